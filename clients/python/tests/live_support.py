"""Helpers for the live tests: a recording, fault-injecting reverse proxy in front of Keymaster.

`FaultProxy` listens on 127.0.0.1 and forwards every request to a real Keymaster (pytest-django's
`live_server`) with `requests`, recording what it saw. A test can make it answer the next call to
a route with an error instead, either without forwarding (a 429 from an overloaded edge) or after
forwarding (the server did the work but the answer was lost, as a 503 from a load balancer that
timed out would do). The client under test cannot tell it from a real deployment's edge.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

# Hop-by-hop or re-computed headers: never copied from one side to the other.
_REQUEST_SKIP = {"host", "connection", "keep-alive", "content-length", "accept-encoding"}
_RESPONSE_SKIP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
}


@dataclass
class Seen:
    """One request the proxy received, and the status it answered with."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int = 0
    forwarded: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def bearer(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None


@dataclass
class Fault:
    """Answer the next `method path` with `status` (after forwarding it, if `forward`)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    forward: bool = False


class FaultProxy:
    """A threaded reverse proxy to `target`; `url` is the base URL to give the client."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._faults: dict[tuple[str, str], deque[Fault]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: Any = b"",
        forward: bool = False,
    ) -> None:
        """Queue one fault for `method path`; a dict `body` is sent as JSON."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else bytes(body)
        with self._lock:
            self._faults.setdefault((method.upper(), path), deque()).append(
                Fault(status, dict(headers or {}), raw, forward)
            )

    def seen(self, path: str | None = None, method: str | None = None) -> list[Seen]:
        """The requests received so far, optionally only those to `path` / with `method`."""
        with self._lock:
            return [
                s
                for s in self._seen
                if (path is None or s.path == path) and (method is None or s.method == method)
            ]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get((method, path))
            return queue.popleft() if queue else None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def forward(self, seen: Seen) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in seen.headers.items() if k not in _REQUEST_SKIP}
        headers["accept-encoding"] = "identity"
        response = requests.request(
            seen.method,
            self.target + seen.path,
            headers=headers,
            data=seen.body or None,
            allow_redirects=False,
            timeout=30,
        )
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in _RESPONSE_SKIP]
        return response.status_code, kept, response.content


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real edge: every answer has a length
    server: ThreadingHTTPServer

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        fault = proxy._take_fault(self.command, self.path)
        if fault is None or fault.forward:
            status, headers, body = proxy.forward(seen)
            seen.forwarded = True
        if fault is not None:
            status, headers, body = fault.status, list(fault.headers.items()), fault.body
        seen.status = status
        proxy._record(seen)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: the tests read `seen` instead


def jwt_claims(token: str) -> dict[str, Any]:
    """Decode a JWT's payload without checking it (to read `exp` in a test)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
