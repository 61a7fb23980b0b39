"""When to try again: exponential backoff with jitter, never before the peer's Retry-After."""

from __future__ import annotations

import random


def backoff_seconds(attempt: int, retry_after: float | None, *, base: float, cap: float) -> float:
    """Return the wait before attempt `attempt + 1`: jittered ``base * 2^(attempt-1)``, capped."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    # "Equal jitter": spread retries out without ever retrying at once.
    return max(retry_after or 0.0, random.uniform(ceiling / 2, ceiling))
