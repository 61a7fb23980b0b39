"""Fixed-window counters shared by every process: daily quotas, rate limits, guess throttles."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Greatest

from keymaster.models import Counter

# One statement, so concurrent takes can never pass the limit: the insert starts a window, the
# conditional update adds to it only while the sum stays within the limit, and no row comes
# back when it would not. PostgreSQL and SQLite (≥ 3.35) share this syntax.
_TAKE_SQL = f"""
INSERT INTO {Counter._meta.db_table} (key, window_start, count) VALUES (%s, %s, %s)
ON CONFLICT (key, window_start) DO UPDATE
    SET count = {Counter._meta.db_table}.count + EXCLUDED.count
    WHERE {Counter._meta.db_table}.count + EXCLUDED.count <= %s
RETURNING count
"""  # noqa: S608 - table name is ours, every value is a parameter


@dataclass(frozen=True)
class Window:
    """A limit of `limit` per `seconds`-long window aligned to the Unix epoch."""

    key: str
    seconds: int
    limit: int

    def start(self, now: float) -> int:
        return int(now) - int(now) % self.seconds

    def seconds_left(self, now: float) -> float:
        return self.start(now) + self.seconds - now


@dataclass(frozen=True)
class Take:
    allowed: bool
    used: int
    limit: int
    reset_in: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


def counter_take(window: Window, amount: int = 1, *, now: float | None = None) -> Take:
    """Add `amount` to the window's count if the result stays within its limit."""
    now = time.time() if now is None else now
    start = window.start(now)
    reset_in = window.seconds_left(now)
    if amount > window.limit:
        return Take(False, counter_peek(window, now=now), window.limit, reset_in)
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_SQL, [window.key, start, amount, window.limit])
        row = cursor.fetchone()
    if row is None:
        return Take(False, counter_peek(window, now=now), window.limit, reset_in)
    return Take(True, int(row[0]), window.limit, reset_in)


def counter_give_back(window: Window, amount: int, *, now: float | None = None) -> None:
    """Take `amount` off the window's count (never below 0): a take that was not used."""
    if amount <= 0:
        return
    now = time.time() if now is None else now
    Counter.objects.filter(key=window.key, window_start=window.start(now)).update(
        count=Greatest(F("count") - amount, 0)
    )


def counter_preview(window: Window, amount: int = 1, *, now: float | None = None) -> Take:
    """Say whether `counter_take(window, amount)` would be allowed now, without taking."""
    now = time.time() if now is None else now
    used = counter_peek(window, now=now)
    return Take(used + amount <= window.limit, used, window.limit, window.seconds_left(now))


def counter_peek(window: Window, *, now: float | None = None) -> int:
    """Return how much of the window's limit is used."""
    now = time.time() if now is None else now
    row = (
        Counter.objects.filter(key=window.key, window_start=window.start(now))
        .values_list("count", flat=True)
        .first()
    )
    return int(row or 0)


def counter_peek_many(windows: list[tuple[Window, float]]) -> list[int]:
    """Return how much each (window, at time) has used, in one query."""
    wanted = [(window.key, window.start(at)) for window, at in windows]
    query = Q()
    for key, start in wanted:
        query |= Q(key=key, window_start=start)
    rows = Counter.objects.filter(query).values_list("key", "window_start", "count")
    found = {(key, start): int(count) for key, start, count in rows}
    return [found.get(pair, 0) for pair in wanted]


# Windows longer than any prune horizon, by key prefix: their rows are kept for two of their
# windows (the current one and the one before, which the guess throttle still reads).
LONG_WINDOWS = {"auth-ok:": 30 * 86_400}


def counters_prune(*, older_than: float, now: float | None = None) -> int:
    """Delete windows that started more than `older_than` seconds ago (long windows later)."""
    now = time.time() if now is None else now
    stale = Q(window_start__lt=int(now - older_than))
    for prefix, seconds in LONG_WINDOWS.items():
        stale &= ~Q(key__startswith=prefix, window_start__gte=int(now - 2 * seconds))
    deleted, _ = Counter.objects.filter(stale).delete()
    return deleted
