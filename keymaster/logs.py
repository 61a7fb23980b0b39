"""Structured logs: the ids a log line is about, and the X-Request-ID every response carries.

`log_ids(app_id=..., notification_id=...)` binds ids to the current request or task (a
context variable); `LogIdsFilter` copies the bound ones onto every record, where the JSON
format (LOG_FORMAT=json) prints them as fields. Only ids are bound: never a token or secret.
A transport's lines carry `provider` (ProviderFilter); so does a device registration's.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

LOG_IDS = ("request_id", "app_id", "notification_id", "delivery_id", "provider")
_bound: ContextVar[dict[str, str] | None] = ContextVar("log_ids", default=None)
# What a request's own X-Request-ID may be to be kept: short, and nothing a log could choke on.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def log_ids(**ids: Any) -> None:
    """Bind `ids` (of LOG_IDS) to the log lines of the rest of this request or task."""
    current = dict(_bound.get() or {})
    current.update({name: str(value) for name, value in ids.items() if value is not None})
    _bound.set(current)


@contextmanager
def log_ids_bound(**ids: Any) -> Iterator[None]:
    """Bind `ids` for the lines logged inside the block only."""
    token = _bound.set(dict(_bound.get() or {}))
    try:
        log_ids(**ids)
        yield
    finally:
        _bound.reset(token)


class LogIdsFilter(logging.Filter):
    """Put the bound ids on each record (as attributes the formatter may print)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_bound.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class ProviderFilter(logging.Filter):
    """Mark each line of one provider's module with that provider (as its "FCM:" prefix says).

    Added to a transport's own logger: `logger.addFilter(ProviderFilter("fcm"))`.
    """

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "provider"):
            record.provider = self.provider
        return True


def formatter(name: str) -> logging.Formatter:
    """The formatter LOGGING names `name` ("plain" or "json"), built as logging would."""
    from logging.config import DictConfigurator

    from django.conf import settings

    config = dict(settings.LOGGING["formatters"][name])
    return DictConfigurator({}).configure_formatter(config)


def request_id_for(request: HttpRequest) -> str:
    """The request's own X-Request-ID when it is sane, else a new one."""
    given = request.headers.get("X-Request-ID", "")
    return given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Bind a request id to the request's log lines and answer it in `X-Request-ID`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request)
        # Bound until the request is finished, not just until the view returns: Django logs
        # a 4xx/5xx answer (django.request) after the middleware chain.
        _bound.set({"request_id": request_id})
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def _unbind(**kwargs: Any) -> None:
    _bound.set(None)


request_finished.connect(_unbind, dispatch_uid="keymaster-log-ids-unbind")
