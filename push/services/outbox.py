"""The claim-and-sweep mechanism deliveries and receipts share.

Rows wait in a `waiting` status until `next_attempt_at`; a worker claims a chunk by moving it to
`sending` with a lease (`claimed_until`); the sweeper queues due rows again and takes back the
leases of workers that died. Claims are conditional, so a task run twice does its work once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F


def outbox_claim(
    model: type[models.Model],
    ids: Sequence[int],
    *,
    waiting: str,
    sending: str,
    now: datetime,
    **also: Any,
) -> list[int]:
    """Move the waiting, due rows among `ids` to `sending` under a lease; return their ids."""
    with transaction.atomic():
        claimed = list(
            model.objects.select_for_update(skip_locked=True)
            .filter(id__in=ids, status=waiting, next_attempt_at__lte=now)
            .values_list("id", flat=True)
        )
        model.objects.filter(id__in=claimed).update(
            status=sending,
            claimed_until=now + timedelta(seconds=settings.PUSH_CLAIM_SECONDS),
            attempts=F("attempts") + 1,
            **also,
        )
    return claimed


def outbox_sweep(
    model: type[models.Model],
    *,
    waiting: str,
    sending: str,
    now: datetime,
    enqueue: Callable[[list[int]], None],
    requeue_after: int = 300,
    limit: int = 10_000,
) -> int:
    """Take back expired leases and queue due rows not queued recently; return how many."""
    with transaction.atomic():
        model.objects.filter(status=sending, claimed_until__lt=now).update(
            status=waiting, claimed_until=None, enqueued_at=None
        )
        due = list(
            model.objects.select_for_update(skip_locked=True)
            .filter(status=waiting, next_attempt_at__lte=now)
            .exclude(enqueued_at__gt=now - timedelta(seconds=requeue_after))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        model.objects.filter(id__in=due).update(enqueued_at=now)
        enqueue(due)
    return len(due)
