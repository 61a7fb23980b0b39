"""What the hostile-input tests need: row counts, a connection counter, gunicorn, a raw client.

- `rows_stored()` counts every row a request could leave behind;
- `ConnectionCounter` listens on loopback addresses and counts the connections it accepts (an
  SSRF that got through would show up here);
- `gunicorn_serve()` runs the production server (the Procfile's gunicorn) on an ephemeral port;
- `post_streaming()` sends a large body over a raw socket and notes how much had been sent when
  the answer arrived, which proves the server answered without reading the whole body.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django_q.models import OrmQ

from keymaster.models import Counter
from push.models import (
    AuditEvent,
    Delivery,
    Device,
    IdempotencyRecord,
    Notification,
    Receipt,
    ReceiptAttempt,
)

ROOT = Path(__file__).resolve().parents[2]
_STORED = (
    Notification,
    Delivery,
    Device,
    Receipt,
    ReceiptAttempt,
    IdempotencyRecord,
    AuditEvent,
    OrmQ,
    Counter,
)


def rows_stored() -> dict[str, int]:
    """Count the rows of every table a push request writes (queued tasks and counters too)."""
    return {model.__name__: model.objects.count() for model in _STORED}


def rows_added(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(after[name] - before[name] for name in before)


class ConnectionCounter:
    """TCP listeners on loopback addresses that accept, count and drop every connection."""

    def __init__(self, addresses: tuple[str, ...] = ("127.0.0.1", "127.0.0.2", "::1")) -> None:
        self.ports: dict[str, int] = {}
        self._sockets: list[socket.socket] = []
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.bind((address, 0))
            except OSError:  # no IPv6 on this machine: the [::1] cases then count nothing
                continue
            sock.listen(16)
            sock.setblocking(False)
            self.ports[address] = sock.getsockname()[1]
            self._sockets.append(sock)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._count

    def __enter__(self) -> ConnectionCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self._sockets, [], [], 0.05)
            for sock in ready:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    continue
                with self._lock:
                    self._count += 1
                conn.close()


@contextmanager
def gunicorn_serve(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """Run the production server (the Procfile's, one worker) on a loopback port; yield its address.

    The listening socket is made here on port 0 and handed over, so there is no port race and
    requests wait in its backlog until the worker is up. The database is never touched by the
    requests these tests send (they are refused before any query), so a scratch SQLite file is
    enough.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gunicorn.sqlite3'}",
    }
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "keymaster.asgi:application",
            "--config",
            "python:keymaster.gunicorn_conf",
            "--bind",
            f"fd://{listener.fileno()}",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        pass_fds=(listener.fileno(),),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield listener.getsockname()
    finally:
        process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown (TERM waits for workers)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        listener.close()
        log.close()


@dataclass
class StreamedAnswer:
    status: int
    body: bytes
    sent_before_answer: int  # body bytes the client had sent when the first answer byte came
    total: int  # body bytes the client meant to send


def post_streaming(
    address: tuple[str, int], head: bytes, body: bytes, *, chunked: bool = False
) -> StreamedAnswer:
    """Send `head` then `body` (raw, or chunked), reading the answer as soon as it comes.

    Sending stops at the first byte of the answer: a server that answers before the body is in
    has not read it. The timeout only keeps a broken server from hanging the suite.
    """
    sock = socket.create_connection(address, timeout=60)
    try:
        sock.sendall(head)
        sock.setblocking(False)
        pieces = _pieces(body, chunked)
        pending, sent, sent_at_answer = b"", 0, None
        answer = b""
        while True:
            want_write = sent_at_answer is None and (pending or pieces)
            readable, writable, _ = select.select([sock], [sock] if want_write else [], [], 60)
            if not readable and not writable:
                raise AssertionError("the server neither read the body nor answered in 60 s")
            if readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if data and sent_at_answer is None:
                    sent_at_answer = sent
                answer += data
                if not data or _complete(answer):
                    break
            if writable:
                if not pending:
                    pending = pieces.pop(0)
                try:
                    written = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pieces, pending = [], b""  # the server hung up: read what it said
                    continue
                except BlockingIOError:
                    continue
                sent += written
                pending = pending[written:]
    finally:
        sock.close()
    head_part, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1]) if head_part else 0
    return StreamedAnswer(
        status, payload, sent if sent_at_answer is None else sent_at_answer, len(body)
    )


def _pieces(body: bytes, chunked: bool, size: int = 64 * 1024) -> list[bytes]:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    if not chunked:
        return parts
    return [b"%x\r\n%s\r\n" % (len(part), part) for part in parts] + [b"0\r\n\r\n"]


def _complete(answer: bytes) -> bool:
    head, found, payload = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(payload) >= int(value.strip())
    return False
