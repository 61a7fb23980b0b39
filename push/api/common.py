"""What the push API views share: input validation and the caller's app."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request


def valid(serializer_class: type[serializers.Serializer], data: Any) -> dict:
    """Validate `data`, raising the API's 400 naming every bad field."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


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
