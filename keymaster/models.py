"""Cross-cutting storage: the fixed-window counters behind quotas and rate limits."""

from __future__ import annotations

from django.db import models


class Counter(models.Model):
    """How much of a limit `key` has used in the window starting at `window_start`.

    Kept in the database (not one process's memory) so every web process and worker shares it.
    """

    key = models.CharField(max_length=200)
    window_start = models.BigIntegerField(help_text="Unix time the window starts at")
    count = models.BigIntegerField(default=0)

    class Meta:
        # The unique index is the ON CONFLICT target of the one-statement take, and serves the
        # "usage of key K in window W" reads of the config endpoint and the Console.
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="uniq_counter_window")
        ]

    def __str__(self) -> str:
        return f"{self.key}@{self.window_start}: {self.count}"
