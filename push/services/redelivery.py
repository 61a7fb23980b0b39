"""Redelivering a receipt on an admin's request: queue it again now, with its webhook-id."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from keymaster.errors import NotFound
from push.delivery.queue import receipts_enqueue
from push.models import Receipt, ReceiptStatus
from push.services.audit import audit_record


def receipt_redeliver(*, receipt: Receipt, actor: Any) -> Receipt:
    """Send a receipt again now (same webhook-id), whatever became of it before."""
    if receipt.status == ReceiptStatus.SENDING:
        raise NotFound("That receipt is being sent right now.")
    now = timezone.now()
    with transaction.atomic():
        Receipt.objects.filter(id=receipt.id).update(
            status=ReceiptStatus.PENDING, next_attempt_at=now, enqueued_at=now, claimed_until=None
        )
        receipts_enqueue([receipt.id])
        audit_record(
            app=receipt.app, actor=actor, action="receipt.redeliver", webhook_id=receipt.webhook_id
        )
    receipt.refresh_from_db()
    return receipt
