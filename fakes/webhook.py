"""A fake webhook receiver: records every POST and answers as scripted.

Control it in-process through `WebhookFake`'s methods, or over HTTP when it runs as a
separate process (``python -m fakes.webhook --port 8091``):

* ``GET /_control/received`` -> ``{"requests": [{"path", "body", "body_b64", "headers",
  "time", "status"}]}`` (``?offset=N&limit=M`` for one page of a long run); ``GET /_control/stats``;
* ``POST /_control/script`` ``{"statuses": [503, 503, 200]}`` -> answered in order, then the
  mode's answer;
* ``POST /_control/mode`` ``{"mode": "normal" | "down" | "close" | "gone" | "redirect",
  "location": "<url>"?}``: ``down`` answers 503, ``close`` drops the connection unanswered,
  ``gone`` answers 410, ``redirect`` answers 302 to an internal address (the metadata service
  unless ``location`` says otherwise);
* ``POST /_control/latency`` ``{"ms": 100}``; ``POST /_control/reset``.

Every other POST, on any path, is a delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fakes.server import FakeServer, query_int, read_json

MODES = ("normal", "down", "close", "gone", "redirect")
INTERNAL_REDIRECT = "http://169.254.169.254/latest/meta-data/"
_MODE_STATUS = {"normal": 200, "down": 503, "gone": 410, "redirect": 302}


@dataclass
class Delivery:
    """One POST the receiver got; header names are lower-case, `status` is what it answered."""

    path: str
    body: bytes
    headers: dict[str, str]
    time: float
    status: int | None  # None: the connection was closed without an answer

    def as_json(self) -> dict[str, Any]:
        """Render for ``GET /_control/received``."""
        try:
            text: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "path": self.path,
            "body": text,
            "body_b64": base64.b64encode(self.body).decode("ascii"),
            "headers": self.headers,
            "time": self.time,
            "status": self.status,
        }


class WebhookFake(FakeServer):
    """The fake webhook receiver: recording, scripted answers and control API."""

    def __init__(self, *, port: int = 0, keep_received: int | None = None) -> None:
        super().__init__(self.make_app, port=port)
        self._lock = threading.Lock()  # handlers run on the server thread, tests on theirs
        # None keeps every POST; a long soak keeps only the latest N (the counts stay exact).
        self._keep_received = keep_received
        self._clear()

    def _clear(self) -> None:
        self._received: deque[Delivery] = deque(maxlen=self._keep_received)
        self._counts: dict[str, int] = {}
        self._statuses: deque[int] = deque()
        self._mode = "normal"
        self._location = INTERNAL_REDIRECT
        self._latency_ms = 0

    def script(self, statuses: Iterable[int]) -> None:
        """Queue statuses for the next deliveries, in order."""
        with self._lock:
            self._statuses.extend(int(s) for s in statuses)

    def set_mode(self, mode: str, *, location: str | None = None) -> None:
        """Answer every unscripted delivery per `mode` (normal, down, close, gone, redirect)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self._lock:
            self._mode = mode
            self._location = location or INTERNAL_REDIRECT

    def set_latency(self, ms: int) -> None:
        """Delay every answer by `ms` milliseconds."""
        with self._lock:
            self._latency_ms = ms

    def reset(self) -> None:
        """Forget deliveries, scripts, mode and latency."""
        with self._lock:
            self._clear()

    def received(self, path: str | None = None) -> list[Delivery]:
        """Return the deliveries so far, optionally only those to `path`."""
        with self._lock:
            return [d for d in self._received if path is None or d.path == path]

    def stats(self) -> dict[str, Any]:
        """Return counts by answered status, the mode and pending scripted statuses."""
        with self._lock:
            return {
                "requests": sum(self._counts.values()),
                "statuses": dict(self._counts),
                "mode": self._mode,
                "scripted": list(self._statuses),
                "latency_ms": self._latency_ms,
            }

    async def _deliver(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            scripted = self._statuses.popleft() if self._statuses else None
            mode, location, latency = self._mode, self._location, self._latency_ms
        status = scripted if scripted is not None else _MODE_STATUS.get(mode)
        delivery = Delivery(
            path=request.path,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            time=time.time(),
            status=status,
        )
        key = "closed" if status is None else str(status)
        with self._lock:
            self._received.append(delivery)
            self._counts[key] = self._counts.get(key, 0) + 1
        if latency:
            await asyncio.sleep(latency / 1000)
        if status is None:  # "close": drop the connection without an answer
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)  # never written: the socket is gone
        headers = {"Location": location} if 300 <= status < 400 else {}
        return web.json_response({"status": status}, status=status, headers=headers)

    def make_app(self) -> web.Application:
        """Build the aiohttp application (``/_control`` API plus a catch-all receiver)."""
        app = web.Application()
        app.router.add_get("/_control/received", self._c_received)
        app.router.add_get("/_control/stats", self._c_stats)
        app.router.add_post("/_control/script", self._c_script)
        app.router.add_post("/_control/mode", self._c_mode)
        app.router.add_post("/_control/latency", self._c_latency)
        app.router.add_post("/_control/reset", self._c_reset)
        app.router.add_post("/{path:.*}", self._deliver)
        return app

    async def _c_received(self, request: web.Request) -> web.Response:
        offset = query_int(request, "offset", 0)
        limit = query_int(request, "limit")
        deliveries = self.received(request.query.get("path"))
        page = deliveries[offset : None if limit is None else offset + limit]
        return web.json_response({"requests": [d.as_json() for d in page]})

    async def _c_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _c_script(self, request: web.Request) -> web.Response:
        statuses = (await read_json(request)).get("statuses", [])
        self.script(statuses)
        return web.json_response({"ok": True, "queued": len(statuses)})

    async def _c_mode(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        try:
            self.set_mode(str(data.get("mode", "normal")), location=data.get("location"))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _c_latency(self, request: web.Request) -> web.Response:
        self.set_latency(int((await read_json(request)).get("ms", 0)))
        return web.json_response({"ok": True})

    async def _c_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


def main(argv: list[str] | None = None) -> None:
    """Run the fake webhook receiver in the foreground."""
    parser = argparse.ArgumentParser(description="Fake webhook receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument(
        "--keep-received",
        type=int,
        default=None,
        help="keep only the latest N requests whole (default: all; counts are always exact)",
    )
    args = parser.parse_args(argv)
    app = WebhookFake(port=args.port, keep_received=args.keep_received).make_app()
    web.run_app(app, host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
