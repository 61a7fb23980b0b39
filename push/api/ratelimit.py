"""The RateLimit-* headers of an accepted send; a refused one carries them in QuotaExceeded."""

from __future__ import annotations

from keymaster.ratelimit import Take
from push.services.errors import ratelimit_headers


def quota_headers(take: Take) -> dict[str, str]:
    """The RateLimit-* headers of an accepted send."""
    return ratelimit_headers(
        limit=take.limit, remaining=take.remaining, reset=max(0, int(take.reset_in))
    )
