"""CORS for apps' own web pages: which origins may call the endpoints a browser calls.

django-cors-headers does the protocol (preflights, `Access-Control-*`, `Vary: Origin`) on the
endpoints a browser calls (settings.CORS_URLS_REGEX); this module answers its
`check_request_enabled` signal: an origin is allowed when some app lists it in its push
config's `allowed_origins`. Credentials are never allowed (cookies are never sent
cross-origin): a page authenticates with a Bearer token. A registration is further refused
when *its* app does not allow the origin (`origin_not_allowed`), so allowing an origin for one
app never lets it register devices in another.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.db import connection
from django.dispatch import receiver
from django.http import HttpRequest

from keymaster.errors import Forbidden, InvalidInput
from push.models import PushConfig

MAX_ORIGINS = 50
# Plain http only for a developer's own machine.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


def origin_normalise(value: Any) -> str:
    """Return an origin as browsers send it (`https://host[:port]`); raise ValueError if not one."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an origin such as https://app.example.com")
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValueError("not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("must be an origin such as https://app.example.com")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in "/":
        raise ValueError("an origin has no path, query, fragment or user name")
    if not (_HOST.fullmatch(host) or host == "127.0.0.1"):
        raise ValueError("not a valid host name")
    if parts.scheme == "http" and host not in _LOCAL_HOSTS:
        raise ValueError("must use https (plain http only for localhost and 127.0.0.1)")
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


def origins_validate(values: list[Any], field: str = "allowed_origins") -> list[str]:
    """Normalise a list of allowed origins (at most 50, duplicates dropped) or raise 400."""
    if len(values) > MAX_ORIGINS:
        raise InvalidInput({field: [f"At most {MAX_ORIGINS} origins; got {len(values)}."]})
    origins, errors = [], {}
    for index, value in enumerate(values):
        try:
            origins.append(origin_normalise(value))
        except ValueError as exc:
            errors[f"{field}[{index}]"] = [f"{exc}: {str(value)[:100]}"]
    if errors:
        raise InvalidInput(errors)
    return list(dict.fromkeys(origins))


def origin_allowed_by_any_app(origin: str) -> bool:
    """True when some app's push config lists `origin` (one query; configs are one per app)."""
    if connection.vendor == "postgresql":
        return PushConfig.objects.filter(allowed_origins__contains=[origin]).exists()
    # SQLite (`make run`) has no JSON containment: the configs are few, look at each.
    lists = PushConfig.objects.exclude(allowed_origins=[]).values_list("allowed_origins", flat=True)
    return any(origin in origins for origins in lists)


def cross_origin(request: HttpRequest) -> str | None:
    """The request's `Origin` when it comes from another site's page; None when same-origin."""
    origin = request.headers.get("origin")
    if not origin or origin == f"{request.scheme}://{request.get_host()}":
        return None
    return origin


def origin_check(config: PushConfig, origin: str | None) -> None:
    """Refuse a cross-origin call for an app that does not allow `origin` (403)."""
    if origin is not None and origin not in config.allowed_origins:
        raise OriginNotAllowed(
            f"This app does not allow requests from {origin[:200]}: add it to the app's "
            "allowed_origins (PATCH /push/config/{app_id}, or the Console's settings).",
            origin=origin[:200],
        )


@receiver(check_request_enabled)
def cors_allow_app_origins(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    """django-cors-headers' hook: answer CORS for an origin some app allows."""
    origin = request.headers.get("origin")
    # Called for every request whose path is not a browser endpoint: answer those first.
    if not origin or not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    return origin_allowed_by_any_app(origin)
