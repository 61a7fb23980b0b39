"""Today's use of an app's daily quota, as the Console shows it."""

from __future__ import annotations

from dataclasses import dataclass

from push.models import PushConfig
from push.selectors import notifications_today

WARN_AT = 80  # percent: the bar turns amber


@dataclass(frozen=True)
class QuotaUsage:
    used: int
    quota: int

    @property
    def percent(self) -> int:
        return min(100, self.used * 100 // self.quota) if self.quota else 100

    @property
    def level(self) -> str:
        """ "ok", "warn" (80% or more) or "full" (100%)."""
        if self.used >= self.quota:
            return "full"
        return "warn" if self.percent >= WARN_AT else "ok"


def quota_usage(config: PushConfig) -> QuotaUsage:
    """Return how much of the app's quota is used today."""
    return QuotaUsage(used=notifications_today(config), quota=config.daily_quota)
