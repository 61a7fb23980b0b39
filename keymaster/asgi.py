"""The ASGI application production serves (the Procfile: gunicorn's asyncio worker).

An event loop holds every connection, so a client that sends its request slowly (slowloris)
costs a socket, not a worker: Django's views run only once a whole request has arrived. Django's
ASGI handler reads the whole body before any middleware runs, so the body limit of
`keymaster.middleware` is applied here first, from the headers alone: an oversized or chunked
body is refused unread, as under WSGI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keymaster.settings")

Asgi = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Any]


def body_limited(app: Asgi) -> Asgi:
    """Wrap `app` so a body its headers show too large (or chunked) is refused before reading."""
    from keymaster.errors import error_body
    from keymaster.middleware import body_refusal

    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {name.lower(): value for name, value in scope["headers"]}
            refusal = body_refusal(
                headers.get(b"content-length", b"").decode("latin-1"),
                headers.get(b"transfer-encoding", b"").decode("latin-1"),
            )
            if refusal is not None:
                status, code, message = refusal
                body = json.dumps(error_body(code, message)).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


application = body_limited(get_asgi_application())
