"""Slow clients cannot starve the server (#22, item 5).

The server is started exactly as the Procfile's `web` line says (one worker, so one slow
connection would be enough to take a sync server down), on this run's test database. Twenty
connections send a partial request and keep trickling it; meanwhile `/healthz` and a send must
answer, and the slow connections must still be open (held, not merely dropped).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from accounts.tokens import client_token_issue
from tests.factories import enable_push, enroll, fcm_device, make_app, make_user
from tests.webserver import answers, free_port, procfile_web_command, serving
from tests.workers import worker_env

pytestmark = pytest.mark.django_db(transaction=True)

SLOW_CONNECTIONS = 20


@pytest.fixture
def server(tmp_path: Path, providers) -> Iterator[str]:
    env = worker_env(
        {
            "PORT": str(free_port()),
            "WEB_CONCURRENCY": "1",
            "FCM_CREDENTIALS_FILE": settings.FCM_CREDENTIALS_FILE,
            "FCM_API_URL": settings.FCM_API_URL,
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        }
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    with serving(procfile_web_command(), env, tmp_path) as url:
        yield url


def _slow_clients(port: int) -> list[socket.socket]:
    """Open connections that each send part of a request: half stop in the headers, half in
    the body (complete headers, a Content-Length they never reach)."""
    sockets = []
    for n in range(SLOW_CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if n % 2:
            sock.sendall(b"POST /push/send HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        else:
            sock.sendall(
                b"POST /push/send HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"ti'
            )
        sockets.append(sock)
    return sockets


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""  # data would be an answer: not expected either
    except BlockingIOError:
        return True  # nothing to read, not closed: the server is still holding it
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_twenty_slow_connections_do_not_starve_the_server(server):
    app, _ = make_app()
    enable_push(app)
    user = make_user()
    enroll(app, user)
    fcm_device(app, user, "slowloris-device-token-" + "x" * 30)
    token = client_token_issue(app, ["push:send"])["access_token"]
    port = int(server.rsplit(":", 1)[1])

    slow = _slow_clients(port)
    try:
        for sock in slow:  # a trickle: one more byte each, well inside any idle timeout
            sock.sendall(b"i")
        time.sleep(0.5)
        with httpx.Client(base_url=server, timeout=10) as client:
            health = client.get("/healthz")
            send = client.post(
                "/push/send",
                json={"user_id": str(user.id), "title": "Still here", "body": "Despite them"},
                headers={"Authorization": f"Bearer {token}"},
            )
        for sock in slow:
            sock.sendall(b"n")
        held = sum(_still_open(sock) for sock in slow)
    finally:
        for sock in slow:
            sock.close()
    assert health.status_code == 200, health.text
    assert send.status_code == 202, send.text
    assert held == SLOW_CONNECTIONS


def test_a_connection_that_never_finishes_its_headers_is_closed(tmp_path, providers):
    """The header deadline (WEB_HEADER_TIMEOUT, 1 s here): the slot is given back."""
    port = free_port()
    env = worker_env({"PORT": str(port), "WEB_CONCURRENCY": "1", "WEB_HEADER_TIMEOUT": "1"})
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    with serving(procfile_web_command(), env, tmp_path) as url:
        sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        # Keep trickling: each byte well inside any idle timeout, never finishing the headers.
        closed_after = None
        for second in range(12):
            try:
                sock.sendall(b"a")
            except OSError:
                closed_after = second
                break
            if not _still_open(sock):
                closed_after = second
                break
            time.sleep(1)
        sock.close()
        assert closed_after is not None, "the server held a never-ending header for 12 s"
        assert answers(f"{url}/healthz")
