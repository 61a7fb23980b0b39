"""Exceptions raised by the Keymaster client, and the mapping from API errors to them."""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any

from keymaster_client._response import RawResponse
from keymaster_client.retry import parse_retry_after

__all__ = [
    "AuthenticationError",
    "IdempotencyConflict",
    "KeymasterConnectionError",
    "KeymasterError",
    "NotCancelable",
    "NotEnrolled",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PushDisabled",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "ValidationError",
    "WebhookVerificationError",
    "error_from_response",
    "oauth_error_from_response",
]


class KeymasterError(Exception):
    """An error answered by Keymaster, or the failure to reach it.

    `status` is the HTTP status (None when no response arrived), `code` the machine code to
    switch on, `message` a sentence for people, `response_body` the decoded body (or text).

    For a send split into several requests, `sent_notification_ids` holds the ids of the
    chunks that succeeded before this error and `idempotency_key` the logical send's key:
    calling the same send again with that key replays those chunks without delivering twice.
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        response_body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.response_body = response_body
        self.sent_notification_ids: list[str] = []
        self.idempotency_key: str | None = None

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{self.code} ({where}): {self.message}"


class ValidationError(KeymasterError):
    """The request was invalid (400); `fields` maps field paths to messages."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        response_body: Any = None,
        *,
        fields: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(status, code, message, response_body)
        self.fields: dict[str, list[str]] = dict(fields or {})


class AuthenticationError(KeymasterError):
    """The client credentials or the access token were refused."""


class PermissionDenied(KeymasterError):
    """The credentials are valid but may not do this (403)."""


class NotEnrolled(PermissionDenied):
    """Some target users are not enrolled in the calling app; see `user_ids`."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        response_body: Any = None,
        *,
        user_ids: list[str] | None = None,
    ) -> None:
        super().__init__(status, code, message, response_body)
        self.user_ids: list[str] = list(user_ids or [])


class PushDisabled(PermissionDenied):
    """Push notifications are not enabled for the calling app (403)."""


class NotFound(KeymasterError):
    """The device or notification does not exist for this app (404)."""


class IdempotencyConflict(KeymasterError):
    """The Idempotency-Key was already used for a different request (422)."""


class PayloadTooLarge(KeymasterError):
    """The request body is over the server's limit (413)."""


class RateLimited(KeymasterError):
    """Too many requests (429); `retry_after` is the server's wait in seconds, if it gave one."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        response_body: Any = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, response_body)
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    """The app's daily notification quota is used up (429); `retry_after` says until when."""


class ServerError(KeymasterError):
    """Keymaster failed (5xx); `retry_after` is set when the server asked for a wait."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        response_body: Any = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, response_body)
        self.retry_after = retry_after


class NotCancelable(KeymasterError):
    """The notification was already handed to a provider (409); `notification_status` says
    what it is now (`delivered`, `failed`, ...)."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        response_body: Any = None,
        *,
        notification_status: str | None = None,
    ) -> None:
        super().__init__(status, code, message, response_body)
        self.notification_status = notification_status


class KeymasterConnectionError(KeymasterError, builtins.ConnectionError):
    """Keymaster could not be reached (refused, reset or timed out) after all retries.

    Also a builtin `ConnectionError`, so code catching that one catches this too.
    """

    def __init__(self, message: str) -> None:
        super().__init__(None, "connection_error", message)


class WebhookVerificationError(Exception):
    """A receipt webhook failed verification; `reason` says why. Answer such a request 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_ERRORS_BY_CODE: dict[str, type[KeymasterError]] = {
    "validation_error": ValidationError,
    "not_authenticated": AuthenticationError,
    "authentication_failed": AuthenticationError,
    "permission_denied": PermissionDenied,
    "not_enrolled": NotEnrolled,
    "push_disabled": PushDisabled,
    "not_found": NotFound,
    "idempotency_key_reused": IdempotencyConflict,
    "payload_too_large": PayloadTooLarge,
    "quota_exceeded": QuotaExceeded,
    "rate_limited": RateLimited,
    "not_cancelable": NotCancelable,
}

# For codes this client does not know yet (the server may add some): decide by status.
_ERRORS_BY_STATUS: dict[int, type[KeymasterError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
}

_INDEXED_FIELD = re.compile(r"^(user_ids|notifications)\[(\d+)\]")


def error_from_response(response: RawResponse) -> KeymasterError:
    """Turn a failed Keymaster API response into the matching typed exception."""
    body = _decode_body(response)
    status = response.status
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or _default_code(status))
        message = str(error.get("message") or response.reason or code)
    else:
        code = _default_code(status)
        message = _text_excerpt(response) or response.reason or code
        error = {}

    if status >= 500:
        cls: type[KeymasterError] = ServerError
    else:
        cls = _ERRORS_BY_CODE.get(code) or _ERRORS_BY_STATUS.get(status, KeymasterError)

    if issubclass(cls, ValidationError):
        fields = error.get("fields")
        return cls(status, code, message, body, fields=fields if isinstance(fields, dict) else None)
    if issubclass(cls, NotEnrolled):
        user_ids = error.get("user_ids")
        return cls(status, code, message, body, user_ids=_str_list(user_ids))
    if issubclass(cls, NotCancelable):
        current = error.get("status")
        return cls(
            status,
            code,
            message,
            body,
            notification_status=current if isinstance(current, str) else None,
        )
    if issubclass(cls, (RateLimited, ServerError)):
        retry_after = parse_retry_after(response.header("Retry-After"))
        return cls(status, code, message, body, retry_after=retry_after)
    return cls(status, code, message, body)


def oauth_error_from_response(response: RawResponse) -> KeymasterError:
    """Turn a failed token response (RFC 6749 section 5.2 JSON) into an exception.

    Overload and outages keep their usual types so the caller can retry them; every other
    refusal means the credentials or the grant are wrong, which retrying cannot fix.
    """
    status = response.status
    body = _decode_body(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = body["error"]
        message = str(body.get("error_description") or code)
    else:
        code = _default_code(status)
        message = _text_excerpt(response) or response.reason or code
    retry_after = parse_retry_after(response.header("Retry-After"))
    if status >= 500:
        return ServerError(status, code, message, body, retry_after=retry_after)
    if status == 429:
        return RateLimited(status, code, message, body, retry_after=retry_after)
    return AuthenticationError(status, code, message, body)


def offset_field_paths(error: KeymasterError, offset: int) -> None:
    """Shift `user_ids[N]` / `notifications[N]` paths by `offset` to index the caller's list.

    A send split into chunks gets errors indexed within one chunk; the caller knows only
    the whole list.
    """
    if offset == 0 or not isinstance(error, ValidationError):
        return

    def shift(path: str) -> str:
        return _INDEXED_FIELD.sub(lambda m: f"{m[1]}[{int(m[2]) + offset}]", path, count=1)

    error.fields = {shift(path): messages for path, messages in error.fields.items()}


def _decode_body(response: RawResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _text_excerpt(response: RawResponse, limit: int = 200) -> str:
    text = response.text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _default_code(status: int) -> str:
    if status >= 500:
        return "server_error"
    return {
        400: "validation_error",
        401: "authentication_failed",
        403: "permission_denied",
        404: "not_found",
        413: "payload_too_large",
        429: "rate_limited",
    }.get(status, f"http_{status}")


def _str_list(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
