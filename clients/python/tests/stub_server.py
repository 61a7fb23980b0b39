"""A scripted Keymaster on 127.0.0.1 for the client's tests: real HTTP, canned answers.

It plays the OAuth token endpoint itself (Basic auth, numbered tokens, revocation) and
answers API routes from replies that a test queues or installs, recording every request.
Also the fake clock the tests hand the client, so token expiry needs no waiting.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit


@dataclass
class Reply:
    """One canned answer. `body` is JSON-encoded unless it is bytes; `delay` stalls it."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Recorded:
    """One request the stub received."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def route(self) -> str:
        """The path without its query string: what replies are installed for."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, str]:
        return {name: values[0] for name, values in parse_qs(self.body.decode()).items()}


Handler = Callable[[Recorded], Reply]


def api_error(status: int, code: str, message: str = "", **extra: Any) -> Reply:
    """Build a reply in Keymaster's error format."""
    return Reply(status, {"error": {"code": code, "message": message or code, **extra}})


class StubServer:
    """Serve scripted replies; `url` is the base URL to give KeymasterClient."""

    def __init__(
        self,
        *,
        client_id: str = "app-1",
        client_secret: str = "secret-1",
        expires_in: int = 3600,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.token_delay = 0.0
        self.requests: list[Recorded] = []
        self.issued_tokens: list[str] = []
        self._valid_tokens: set[str] = set()
        self._queued: dict[tuple[str, str], deque[Reply | Handler]] = defaultdict(deque)
        self._installed: dict[tuple[str, str], Reply | Handler] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._server.daemon_threads = True
        self._server.stub = self  # type: ignore[attr-defined]
        # A short poll keeps stop() (which waits for the next poll) from slowing every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def queue(self, method: str, path: str, *replies: Reply | Handler) -> None:
        """Answer the next requests to `method path` with `replies`, in order, once each.

        Replies queued for `POST /oauth/token` stand in for the built-in token endpoint.
        """
        with self._lock:
            self._queued[(method, path)].extend(replies)

    def install(self, method: str, path: str, reply: Reply | Handler) -> None:
        """Answer every request to `method path` (after any queued replies) with `reply`."""
        with self._lock:
            self._installed[(method, path)] = reply

    def revoke_tokens(self) -> None:
        """Make every token issued so far answer 401, as after a key rotation."""
        with self._lock:
            self._valid_tokens.clear()

    def to(self, path: str) -> list[Recorded]:
        """Return the recorded requests to `path` (any query string), oldest first."""
        with self._lock:
            return [request for request in self.requests if request.route == path]

    def handle(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
        if request.route == "/oauth/token":
            with self._lock:
                queued = self._queued[("POST", "/oauth/token")]
                canned = queued.popleft() if queued else None
            return self._token(request) if canned is None else _answer(canned, request)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        route = (request.method, request.route)
        with self._lock:
            if bearer not in self._valid_tokens:
                return api_error(401, "authentication_failed", "Token is invalid or expired")
            queued = self._queued[route]
            reply = queued.popleft() if queued else self._installed.get(route)
        if reply is None:
            return api_error(
                404, "not_found", f"stub has no reply for {request.method} {request.path}"
            )
        return _answer(reply, request)

    def _token(self, request: Recorded) -> Reply:
        time.sleep(self.token_delay)
        if _basic_credentials(request) != (self.client_id, self.client_secret):
            return Reply(401, {"error": "invalid_client", "error_description": "bad credentials"})
        if request.form != {"grant_type": "client_credentials", "scope": "push:send"}:
            return Reply(400, {"error": "invalid_request", "error_description": "bad grant"})
        with self._lock:
            token = f"token-{len(self.issued_tokens) + 1}"
            self.issued_tokens.append(token)
            self._valid_tokens.add(token)
        return Reply(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "scope": "push:send",
            },
        )


def _answer(reply: Reply | Handler, request: Recorded) -> Reply:
    return reply(request) if callable(reply) else reply


def _basic_credentials(request: Recorded) -> tuple[str, str] | None:
    """Decode HTTP Basic client credentials as RFC 6749 section 2.3.1 (and Keymaster) do."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = Recorded(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length),
        )
        reply = self.server.stub.handle(request)  # type: ignore[attr-defined]
        time.sleep(reply.delay)
        if reply.body is None:
            payload = b""
        elif isinstance(reply.body, bytes):
            payload = reply.body
        else:
            payload = json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if payload and "Content-Type" not in reply.headers:
                self.send_header("Content-Type", "application/json")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test); nothing to answer

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
