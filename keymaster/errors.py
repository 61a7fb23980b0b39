"""The one JSON error format of the API, and the application errors services raise.

Every error answer is ``{"error": {"code", "message", ...}}``: `code` is stable and meant to be
switched on, `message` is for a person and names the field at fault. Validation errors add
``fields`` (``{"title": ["..."], "notifications[3].body": ["..."]}``).
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class KeymasterError(Exception):
    """An application error with its HTTP status, stable code and readable message."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInput(KeymasterError):
    code = "validation_error"

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__(_summary(fields), fields=fields)


class NotFound(KeymasterError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Forbidden(KeymasterError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"


class Conflict(KeymasterError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class TooManyRequests(KeymasterError):
    """A limit was reached; `retry_after` seconds until it resets."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = max(1, math.ceil(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validate API input with `serializer_class`, raising the 400 that names every bad field."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every API error in the one format."""
    if isinstance(exc, KeymasterError):
        return Response(
            error_body(exc.code, exc.message, **exc.extra),
            status=exc.status_code,
            headers=exc.headers(),
        )
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("payload_too_large", "The request body is too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        response.data = error_body("validation_error", _summary(fields), fields=fields)
    elif isinstance(exc, exceptions.APIException):
        code = _code_of(exc)
        response.data = error_body(code, _text(exc.detail))
    return response


def json_error(status_code: int, code: str, message: str) -> JsonResponse:
    """The same format for answers made outside DRF (404/500 handlers, middleware)."""
    return JsonResponse(error_body(code, message), status=status_code)


def _code_of(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.NotAuthenticated):
        return "not_authenticated"
    if isinstance(exc, exceptions.AuthenticationFailed):
        return "authentication_failed"
    if isinstance(exc, exceptions.PermissionDenied):
        return "permission_denied"
    if isinstance(exc, exceptions.NotFound):
        return "not_found"
    if isinstance(exc, exceptions.Throttled):
        return "rate_limited"
    if isinstance(exc, exceptions.ParseError):
        return "parse_error"
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return "unsupported_media_type"
    if isinstance(exc, exceptions.MethodNotAllowed):
        return "method_not_allowed"
    return str(exc.default_code)


def _text(detail: Any) -> str:
    if isinstance(detail, dict):
        # simplejwt nests its reason under "detail" with a list of messages beside it.
        return str(detail.get("detail") or next(iter(detail.values()), ""))
    if isinstance(detail, list):
        return " ".join(str(item) for item in detail)
    return str(detail)


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into ``{"a.b[2].c": ["message"]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # ListField reports its items' errors by index
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, path))
    elif isinstance(detail, list) and detail and all(isinstance(d, str) for d in detail):
        out[prefix or "non_field_errors"] = [str(d) for d in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                out.update(_flatten(value, f"{prefix}[{index}]"))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _summary(fields: dict[str, list[str]]) -> str:
    if not fields:
        return "Invalid input."
    name, messages = next(iter(fields.items()))
    more = len(fields) - 1
    text = f"{name}: {messages[0]}" if name != "non_field_errors" else messages[0]
    return text + (f" (and {more} more field{'s' if more > 1 else ''})" if more else "")
