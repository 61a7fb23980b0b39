"""Guessing protection for passwords and client secrets, counted in the shared database."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings

from keymaster.errors import TooManyRequests
from keymaster.ratelimit import Window, counter_peek, counter_take

# An address may try this many times more than one account may: many users can share a NAT.
_PER_ADDRESS_FACTOR = 5


def _windows(subject: str, address: str) -> list[Window]:
    seconds, limit = settings.AUTH_THROTTLE_WINDOW, settings.AUTH_THROTTLE_ATTEMPTS
    # Hashed: the subject is whatever the caller typed (a 300-character email, a client_id with
    # a NUL) and the counter key is a 200-character column PostgreSQL checks.
    digest = hashlib.sha256(subject.lower().encode("utf-8", "surrogatepass")).hexdigest()
    return [
        Window(f"auth-fail:{digest}", seconds, limit),
        Window(f"auth-fail-ip:{address}", seconds, limit * _PER_ADDRESS_FACTOR),
    ]


def guess_throttle_check(subject: str, address: str) -> None:
    """Refuse with 429 when `subject` or `address` has failed too often in this window."""
    for window in _windows(subject, address):
        if counter_peek(window) >= window.limit:
            raise TooManyRequests(
                "Too many failed attempts; try again later.",
                retry_after=window.seconds_left(time.time()),
            )


def guess_throttle_fail(subject: str, address: str) -> None:
    """Count one failed attempt for `subject` and for `address`."""
    for window in _windows(subject, address):
        counter_take(window, 1)


def client_address(request: object) -> str:
    """Return the caller's address (REMOTE_ADDR: set it right behind a proxy)."""
    return str(getattr(request, "META", {}).get("REMOTE_ADDR", "unknown"))
