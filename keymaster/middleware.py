"""Request limits and security headers that apply to every path.

Refuse oversized request bodies before anything reads them.

Django checks DATA_UPLOAD_MAX_MEMORY_SIZE when `request.body` is read, which DRF does only once
a view asks for its data, after authentication (a database query) and for API views only. This
refuses first, for every path, from `Content-Length` alone. A body longer than it declares
cannot get past it: Django wraps the input in a LimitedStream that never reads beyond
`Content-Length`. A chunked body (no `Content-Length`) is refused with 411, because Django would
silently read it as empty.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from keymaster.errors import json_error


def body_refusal(content_length: str, transfer_encoding: str) -> tuple[int, str, str] | None:
    """(status, code, message) refusing a body by its headers alone, or None to go on."""
    if content_length:
        if not (content_length.isascii() and content_length.isdigit()):
            return 400, "bad_request", "Content-Length must be a whole number."
        limit = settings.REQUEST_MAX_BYTES
        if int(content_length) > limit:
            return (
                413,
                "payload_too_large",
                f"The request body is {content_length} bytes; at most {limit} are accepted.",
            )
    elif "chunked" in transfer_encoding.lower():
        return 411, "length_required", "Send the body with a Content-Length, not chunked."
    return None


class RequestSizeLimitMiddleware:
    """Answer 413 when `Content-Length` exceeds ``settings.REQUEST_MAX_BYTES``, unread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = body_refusal(
            request.META.get("CONTENT_LENGTH") or "",
            request.META.get("HTTP_TRANSFER_ENCODING", ""),
        )
        if refusal is not None:
            return json_error(*refusal)
        return self.get_response(request)


class PermissionsPolicyMiddleware:
    """Send ``settings.PERMISSIONS_POLICY`` as `Permissions-Policy` on every answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response
