"""Retention: delete what ended before the window, in small batches, never what is unfinished.

A notification is deleted RETENTION_DAYS after it was accepted, with its deliveries, their
receipts and the receipts' attempts, once it has ended (delivered, failed, no devices) and
none of its deliveries or receipts is still waiting or being sent. Audit events go after
AUDIT_RETENTION_DAYS.

Each batch is one short transaction: at most RETENTION_BATCH notifications found through the
`notification_created` index (keyset order, so rows kept are never read twice), then four
DELETEs by those ids through the foreign-key indexes. Every statement runs under a 1 s
`statement_timeout` and a short `lock_timeout`: a batch that would hold locks for long fails
instead (and the next hour tries again). Between batches it sleeps, so the workers' own
writes are never queued behind it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from keymaster.outage import through_db_outage
from push.delivery.monitor import heartbeats_prune
from push.models import (
    AuditEvent,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    Receipt,
    ReceiptAttempt,
    ReceiptStatus,
)

logger = logging.getLogger(__name__)

# The statuses a notification never leaves. Keep in step with NotificationStatus: one that is
# not listed (a scheduled send, say) is never deleted.
ENDED = (
    NotificationStatus.DELIVERED,
    NotificationStatus.FAILED,
    NotificationStatus.NO_DEVICES,
    NotificationStatus.CANCELED,
    NotificationStatus.MUTED,
)
_UNFINISHED_DELIVERY = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
_UNFINISHED_RECEIPT = (ReceiptStatus.PENDING, ReceiptStatus.SENDING)
STATEMENT_TIMEOUT_MS = 1000
LOCK_TIMEOUT_MS = 200
PAUSE_SECONDS = 0.05


def _limits() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            cursor.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")


Position = tuple[datetime, Any]  # (created_at, id): where the next batch starts reading


def _ended_batch(cutoff: datetime, after: Position | None, size: int) -> list[tuple]:
    """(id, status, created_at) of up to `size` notifications accepted before `cutoff`.

    In (created_at, id) order from `after`: one send stores many with the same created_at.
    """
    rows = Notification.objects.filter(created_at__lt=cutoff).order_by("created_at", "id")
    if after is not None:
        at, pk = after
        rows = rows.filter(Q(created_at__gt=at) | Q(created_at=at, id__gt=pk))
    return list(rows.values_list("id", "status", "created_at")[:size])


def _raw_delete(rows: QuerySet) -> int:
    # One DELETE, no cascade: the ORM's would load every row to delete it.
    return rows._raw_delete(connection.alias) or 0


def _deletable(ids: list) -> list:
    busy = set(
        Delivery.objects.filter(
            notification_id__in=ids, status__in=_UNFINISHED_DELIVERY
        ).values_list("notification_id", flat=True)
    ) | set(
        Receipt.objects.filter(
            delivery__notification_id__in=ids, status__in=_UNFINISHED_RECEIPT
        ).values_list("delivery__notification_id", flat=True)
    )
    return [i for i in ids if i not in busy]


def notifications_prune_batch(
    cutoff: datetime, after: Position | None, size: int
) -> tuple[dict[str, int], Position | None]:
    """Delete one batch; return what it deleted and where the next batch starts (None: done)."""
    with transaction.atomic():
        _limits()
        rows = _ended_batch(cutoff, after, size)
        if not rows:
            return {}, None
        ended = [pk for pk, status, _ in rows if status in ENDED]
        ids = _deletable(ended) if ended else []
        deliveries = Delivery.objects.filter(notification_id__in=ids)
        receipts = Receipt.objects.filter(delivery__notification_id__in=ids)
        deleted = {  # children first
            "receipt_attempts": _raw_delete(ReceiptAttempt.objects.filter(receipt__in=receipts)),
            "receipts": _raw_delete(receipts),
            "deliveries": _raw_delete(deliveries),
            "notifications": _raw_delete(Notification.objects.filter(id__in=ids)),
        }
    last_id, _, last_at = rows[-1]
    return deleted, (last_at, last_id)


def audit_prune_batch(cutoff: datetime, size: int) -> int:
    """Delete up to `size` audit events older than `cutoff`; return how many."""
    with transaction.atomic():
        _limits()
        ids = list(AuditEvent.objects.filter(at__lt=cutoff).values_list("id", flat=True)[:size])
        return _raw_delete(AuditEvent.objects.filter(id__in=ids)) if ids else 0


def retention_prune(*, now: datetime | None = None, pause: float = PAUSE_SECONDS) -> dict:
    """Delete what ended before the retention windows, batch by batch; return the counts."""
    now = now or timezone.now()
    size = settings.RETENTION_BATCH
    totals = {"notifications": 0, "deliveries": 0, "receipts": 0, "receipt_attempts": 0}
    started, batches = time.monotonic(), 0
    cutoff, after = now - timedelta(days=settings.RETENTION_DAYS), None
    while True:
        deleted, after = notifications_prune_batch(cutoff, after, size)
        for name, count in deleted.items():
            totals[name] += count
        batches += 1
        if after is None:
            break
        time.sleep(pause)
    audit_cutoff = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    totals["audit_events"] = 0
    while count := audit_prune_batch(audit_cutoff, size):
        totals["audit_events"] += count
        batches += 1
        time.sleep(pause)
    totals["heartbeats"] = heartbeats_prune(now=now)
    totals["batches"] = batches
    totals["seconds"] = round(time.monotonic() - started, 3)
    logger.info("retention: deleted %s", totals)
    return totals


@through_db_outage
def retention_prune_task() -> dict:
    """The hourly schedule's entry (push-retention)."""
    return retention_prune()
