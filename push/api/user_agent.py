"""What the push API views share beyond the one error format: the device label."""

from __future__ import annotations

from rest_framework.request import Request


def device_label(request: Request) -> str:
    """A readable label for the registering device, from its User-Agent."""
    agent = request.META.get("HTTP_USER_AGENT", "")
    browser = next(
        (name for key, name in _BROWSERS if key in agent), "App" if agent else "Unknown device"
    )
    system = next((name for key, name in _SYSTEMS if key in agent), "")
    return f"{browser} on {system}" if system else browser


# Order matters: Edge and Chrome both say "Chrome"; Chrome and Safari both say "Safari".
_BROWSERS = [
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
]
_SYSTEMS = [
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Mac OS X", "macOS"),
    ("Windows", "Windows"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
]
