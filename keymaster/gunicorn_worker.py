"""gunicorn's asyncio (`asgi`) worker, with a deadline for each connection's first request.

gunicorn closes a keep-alive connection that is idle between requests (`keepalive`) and a body
that stops arriving (`timeout`, per wait), but it waits for a new connection's headers forever:
a client sending a byte now and then would keep its slot until `worker_connections` run out.
This worker closes a connection whose request headers are not complete within
WEB_HEADER_TIMEOUT seconds (10 by default). Built on gunicorn 27's ASGIProtocol (pinned).
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

HEADER_TIMEOUT = float(os.environ.get("WEB_HEADER_TIMEOUT", "10"))


class HeaderDeadlineProtocol(ASGIProtocol):
    """A connection that must finish its first request's headers within HEADER_TIMEOUT."""

    _header_deadline: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # The same close as an expired keep-alive: close the transport, wake the handler.
        self._header_deadline = self.worker.loop.call_later(HEADER_TIMEOUT, self._keepalive_timeout)

    def _on_headers_complete(self) -> Any:
        self._header_deadline_cancel()
        return super()._on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline_cancel()
        super().connection_lost(exc)

    def _header_deadline_cancel(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None


class HeaderDeadlineWorker(gasgi.ASGIWorker):
    """gunicorn's ASGI worker serving connections with HeaderDeadlineProtocol."""

    def init_process(self) -> None:
        # The worker builds its servers with the module's ASGIProtocol, looked up at each
        # connection; this process serves only Keymaster, so swap it for ours.
        gasgi.ASGIProtocol = HeaderDeadlineProtocol
        super().init_process()
