"""When to wait before retrying: Retry-After parsing and exponential backoff with jitter."""

from __future__ import annotations

import math
import random
import time
from datetime import timezone
from email.utils import parsedate_to_datetime

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


def backoff_delay(retry_number: int, *, cap: float = BACKOFF_CAP) -> float:
    """Return the wait before retry `retry_number` (0-based): full jitter, capped.

    Full jitter spreads the retries of many clients that failed together; see
    https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
    """
    ceiling = min(cap, BACKOFF_BASE * (2**retry_number))
    return random.uniform(0, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the wait in seconds a Retry-After header asks for, or None if absent or bad.

    The header is either delta-seconds or an HTTP-date (RFC 9110 section 10.2.3); a date in
    the past means "now".
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates come back naive; HTTP dates are always UTC
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
