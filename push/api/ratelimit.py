"""The RateLimit-* headers of a send answer (draft-ietf-httpapi-ratelimit-headers)."""

from __future__ import annotations

from keymaster.ratelimit import Take


def ratelimit_headers(*, limit: int, remaining: int, reset: int) -> dict[str, str]:
    """Return the three RateLimit-* headers for a quota of `limit` with `remaining` left."""
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(max(0, remaining)),
        "RateLimit-Reset": str(reset),
    }


def quota_headers(take: Take) -> dict[str, str]:
    """The RateLimit-* headers of an accepted send."""
    return ratelimit_headers(
        limit=take.limit, remaining=take.remaining, reset=max(0, int(take.reset_in))
    )
