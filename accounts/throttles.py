"""Guessing protection for passwords and client secrets, counted in the shared database.

Failures are counted per window (AUTH_THROTTLE_WINDOW seconds, N = AUTH_THROTTLE_ATTEMPTS) for
three keys, and a credential is not even checked, answered 429, once

- its subject (an email, an app's client_id) has failed N times from this address; or
- this address has failed 5 × N times (any subjects), or the subject 10 × N times (any
  addresses), unless this address has signed in as this subject before (a success in the last
  30 days): a stranger's guesses then stop new addresses, never the owner's known ones.

So a stranger can lock out only themselves, an address-hopping guesser is held to 10 × N guesses
per window for any one subject, and the counts live in the database, shared by every process.
Subjects are counted in one spelling (a client_id's hyphens, braces and case, an email's case),
and IPv6 addresses by their /64, which one customer usually holds whole.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

from keymaster.errors import TooManyRequests
from keymaster.ratelimit import LONG_WINDOWS, Window, counter_peek_many, counter_take

T = TypeVar("T")

_PER_ADDRESS_FACTOR = 5  # many people can share one NAT
_PER_SUBJECT_FACTOR = 10  # the ceiling for one subject however many addresses guess at it
_KNOWN_GOOD_PREFIX = "auth-ok:"
_KNOWN_GOOD_SECONDS = LONG_WINDOWS[_KNOWN_GOOD_PREFIX]
_KNOWN_GOOD_LIMIT = 2**62


def client_subject(client_id: str) -> str:
    """The throttle subject for an app's client_id, in one spelling whatever was typed."""
    try:
        return f"client:{uuid.UUID(client_id.strip())}"
    except ValueError:
        return f"client:{client_id.strip().lower()}"


def user_subject(email: str) -> str:
    """The throttle subject for a person's email."""
    return f"user:{email.strip().lower()}"


def _digest(*parts: str) -> str:
    # Hashed: the subject is whatever the caller typed (a 300-character email, a client_id with
    # a NUL) and the counter key is a 200-character column PostgreSQL checks.
    joined = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).hexdigest()


def _failure_windows(subject: str, address: str) -> tuple[Window, Window, Window]:
    seconds, limit = settings.AUTH_THROTTLE_WINDOW, settings.AUTH_THROTTLE_ATTEMPTS
    return (
        Window(f"auth-fail-pair:{_digest(subject, address)}", seconds, limit),
        Window(f"auth-fail-ip:{_digest(address)}", seconds, limit * _PER_ADDRESS_FACTOR),
        Window(f"auth-fail:{_digest(subject)}", seconds, limit * _PER_SUBJECT_FACTOR),
    )


def _known_good_window(subject: str, address: str) -> Window:
    key = f"{_KNOWN_GOOD_PREFIX}{_digest(subject, address)}"
    return Window(key, _KNOWN_GOOD_SECONDS, _KNOWN_GOOD_LIMIT)


def guess_throttle_check(subject: str, address: str) -> None:
    """Refuse with 429 when this subject may not be tried from this address now."""
    now = time.time()
    pair, by_address, by_subject = _failure_windows(subject, address)
    good = _known_good_window(subject, address)
    # One query: the three failure counts, and this window's and the last's successes.
    counts = counter_peek_many(
        [(pair, now), (by_address, now), (by_subject, now), (good, now), (good, now - good.seconds)]
    )
    known_good = counts[3] + counts[4] > 0
    blocking = [pair] if counts[0] >= pair.limit else []
    if not known_good:
        held = zip((by_address, by_subject), counts[1:3], strict=True)
        blocking += [window for window, used in held if used >= window.limit]
    if blocking:
        raise TooManyRequests(
            "Too many failed attempts; try again later.",
            retry_after=max(w.seconds_left(now) for w in blocking),
        )


def guess_throttle_fail(subject: str, address: str) -> None:
    """Count one failed attempt for the subject from this address."""
    for window in _failure_windows(subject, address):
        counter_take(window, 1)


def guess_throttle_succeed(subject: str, address: str) -> None:
    """Remember that this address signed in as this subject (it is not held by others' guesses)."""
    counter_take(_known_good_window(subject, address), 1)


def guess_throttled(subject: str, address: str, attempt: Callable[[], T | None]) -> T | None:
    """Run `attempt` (None when the credential is wrong) under the guess throttle."""
    guess_throttle_check(subject, address)
    result = attempt()
    if result is None:
        guess_throttle_fail(subject, address)
    else:
        guess_throttle_succeed(subject, address)
    return result


def _normalised(raw: str) -> str | None:
    try:
        address = ipaddress.ip_address(raw.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _trusted(raw: str) -> bool:
    try:
        address = ipaddress.ip_address(raw.strip().strip("[]"))
    except ValueError:
        return False
    return any(address in network for network in settings.TRUSTED_PROXIES)


def client_address(request: Any) -> str:
    """Return the caller's address: REMOTE_ADDR, or X-Forwarded-For's through TRUSTED_PROXIES.

    X-Forwarded-For is read right to left, skipping the trusted proxies: each proxy appends the
    address it saw, so the first untrusted one is the client; anything further left is whatever
    the client wrote.
    """
    meta = getattr(request, "META", {})
    remote = str(meta.get("REMOTE_ADDR", ""))
    if _trusted(remote):
        hops = [hop for hop in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _trusted(hop):
                return _normalised(hop) or "invalid"
    return _normalised(remote) or "unknown"
