"""The contract every push transport keeps: one message for one device in, one Outcome out.

Transports know their provider's protocol and nothing else: they never touch the database
and never decide what an outcome does to a device. The delivery task does that.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")

MAX_TTL = 2_419_200  # 28 days, FCM's maximum; also every notification's default TTL
MAX_RETRY_AFTER = 24 * 3600  # a provider's Retry-After beyond a day is not honoured as is


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    INVALID_TOKEN = "invalid_token"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What the provider said about one message to one device.

    `error` is the provider's own code (``UNREGISTERED``, ``http_410``, ``timeout`` ...),
    `detail` a short human-readable reason that never contains a push token, and
    `retry_after` the provider's minimum wait in seconds for RETRY outcomes (None: none given).
    """

    kind: OutcomeKind
    error: str | None = None
    detail: str = ""
    retry_after: float | None = None
    # The answer says the app's configuration is wrong (not the device): the delivery wing
    # shows it on the app's push config and keeps the device. Set from the transport's
    # MISCONFIGURED rows; derived from `error`, so not part of equality.
    misconfigured: bool = field(default=False, compare=False)

    @classmethod
    def delivered(cls) -> Outcome:
        return cls(OutcomeKind.DELIVERED)


@dataclass(frozen=True)
class PushMessage:
    """The provider-neutral content of one notification."""

    notification_id: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)  # any JSON values
    ttl: int = MAX_TTL
    priority: str = "normal"  # normal | high
    collapse_key: str | None = None
    urgency: str | None = None  # Web Push Urgency: very-low | low | normal | high
    open_token: str | None = None  # Web Push only, when the app tracks opens (push.opens)


def outcome_for_bug(exc: BaseException, *, redact: str = "") -> Outcome:
    """The outcome of a send that raised instead of answering (a bug, a row it cannot use).

    It is retried like a transient error, so a fixed bug or a restored key lets it through,
    and fails for good once its attempts run out; `redact` (a push token) is kept out of it.
    """
    detail = redacted(f"{type(exc).__name__}: {exc}", redact)
    return Outcome(OutcomeKind.RETRY, "internal_error", detail)


def redacted(text: str, secret: str) -> str:
    """Shorten `text` for an outcome's detail and keep `secret` (a push token) out of it."""
    if secret:
        text = text.replace(secret, f"...{secret[-6:]}")
    return text[:200]


async def gather_each(
    sends: Iterable[Awaitable[T]],
    instead: Callable[[int, Exception], T],
    each: Callable[[int, T], None] | None = None,
    admit: Callable[[int], Awaitable[None]] | None = None,
) -> list[T]:
    """Await every send at once; one that raises gets `instead(index, error)`, in order.

    One message that breaks the code must not lose the answers of the rest of its batch. With
    `each`, every answer is also handed over the moment it arrives (`each(index, answer)`), so
    the caller can record it without waiting for the slowest of the batch; with `admit`, send
    `index` starts only once `admit(index)` returns (the caller's window of unrecorded sends).
    """

    async def one(index: int, send: Awaitable[T]) -> T:
        if admit is not None:
            await admit(index)
        try:
            result = await send
        except Exception as exc:  # cancellation, KeyboardInterrupt: not ours, raised
            result = instead(index, exc)
        if each is not None:
            each(index, result)
        return result

    return list(await asyncio.gather(*(one(i, send) for i, send in enumerate(sends))))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse Retry-After (delay seconds or an HTTP-date) into seconds; None if absent/invalid.

    The one parser for FCM, Web Push and webhooks (RFC 9110 section 10.2.3): a date in the
    past is 0, a date without a zone is ignored, and any wait is capped at MAX_RETRY_AFTER.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    return min(seconds, MAX_RETRY_AFTER)
