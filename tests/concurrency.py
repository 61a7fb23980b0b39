"""Many requests at once: real HTTP races against pytest-django's threaded live server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# Django's test server listens with a backlog of 10: a burst of 50 connections would be reset.
BACKLOG = 256


def burst_url(live_server: Any) -> str:
    """Return the live server's URL, its listen backlog raised to take a burst of connections."""
    # listen() again on a listening socket only changes its backlog (Linux and the BSDs).
    live_server.thread.httpd.socket.listen(BACKLOG)
    return live_server.url


def concurrently(n: int, call: Callable[[int], T]) -> list[T]:
    """Run `call(0)` ... `call(n - 1)` on n threads released together; return their results."""
    start = threading.Barrier(n)

    def run(i: int) -> T:
        start.wait(timeout=30)  # no thread starts before every thread is ready: they overlap
        return call(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))
