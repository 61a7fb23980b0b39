"""The errors the push services raise: the one DRF exception handler (keymaster/errors.py)
turns each into the one JSON error format, with the `code` clients switch on."""

from __future__ import annotations

from keymaster.errors import Forbidden, KeymasterError, TooManyRequests


def ratelimit_headers(*, limit: int, remaining: int, reset: int) -> dict[str, str]:
    """Return the RateLimit-* headers (draft-ietf-httpapi-ratelimit-headers) of a quota."""
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(max(0, remaining)),
        "RateLimit-Reset": str(reset),
    }


class PushDisabled(Forbidden):
    code = "push_disabled"


class NotEnrolled(Forbidden):
    code = "not_enrolled"


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"

    def headers(self) -> dict[str, str]:
        return {
            **super().headers(),
            **ratelimit_headers(
                limit=self.extra["quota"],
                remaining=self.extra["quota"] - self.extra["used"],
                reset=self.retry_after,
            ),
        }


class IdempotencyKeyReused(KeymasterError):
    status_code = 422
    code = "idempotency_key_reused"
