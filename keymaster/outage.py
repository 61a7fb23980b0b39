"""Riding out a database restart: work that lost its connection waits for it and runs again.

A PostgreSQL restart or failover cuts every connection for a second or two. Without this, a
worker fails each task it picks up meanwhile, and their deliveries wait for the sweeper's
requeue delay (minutes) although the database was back after seconds. Only for idempotent work
(claims are conditional), and never inside a transaction, whose work is gone with the
connection.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def through_db_outage(func: Callable[P, T]) -> Callable[P, T]:
    """Run `func` again while the database connection fails, for up to DB_OUTAGE_WAIT seconds."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        deadline = time.monotonic() + settings.DB_OUTAGE_WAIT
        delay = 0.25
        while True:
            try:
                return func(*args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                if connection.in_atomic_block or time.monotonic() + delay > deadline:
                    raise
                logger.warning(
                    "%s: database unavailable (%s); trying again in %.2f s",
                    func.__name__,
                    type(exc).__name__,
                    delay,
                )
                connection.close()  # a broken connection is not reused; the next query reconnects
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    return run
