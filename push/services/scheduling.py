"""Cancelling notifications not yet handed to a provider, and giving their quota back."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import App
from keymaster.errors import Conflict, NotFound
from keymaster.ratelimit import Window, counter_give_back
from push.models import (
    Broadcast,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from push.selectors import DAY, quota_key
from push.services.notifications import quota_day

logger = logging.getLogger(__name__)


class NotCancelable(Conflict):
    code = "not_cancelable"


def quota_give_back(*, app_id: Any, due: datetime | None, amount: int = 1) -> None:
    """Give back `amount` notifications of the daily quota of the day `due` falls on."""
    # Giving back reads no limit: the window is the quota's key and day.
    counter_give_back(Window(quota_key(app_id), DAY, limit=0), amount, now=quota_day(due))


def notification_cancel(*, app: App, notification_id: Any) -> None:
    """Cancel a notification none of whose deliveries was handed to a provider; else 409.

    Its deliveries are locked before the notification, in the order a worker recording them
    takes its locks (push.delivery.deliveries), so the two never deadlock; a delivery a worker
    has claimed is `sending` (or was attempted) by the time the lock is ours: too late.
    """
    with transaction.atomic():
        deliveries = list(
            Delivery.objects.select_for_update()
            .filter(notification_id=_uuid_or_404(notification_id), app=app)
            .order_by("id")
            .values_list("id", "status", "attempts")
        )
        try:
            notification = Notification.objects.select_for_update().get(pk=notification_id, app=app)
        except Notification.DoesNotExist:
            raise NotFound("No such notification.") from None
        if notification.status == NotificationStatus.CANCELED:
            return
        handed = any(s != DeliveryStatus.QUEUED or attempts for _, s, attempts in deliveries)
        if notification.status != NotificationStatus.QUEUED or handed:
            status = "scheduled" if notification.is_scheduled() else notification.status
            raise NotCancelable(
                "The notification can no longer be canceled: a delivery was handed to a "
                f"provider or it has ended ({status}).",
                status=status,
            )
        notifications_mark_canceled([notification.pk], [d[0] for d in deliveries])
        quota_give_back(app_id=app.pk, due=notification.send_at)
        if notification.broadcast_id:
            # The broadcast no longer holds this one's quota (push.services.broadcasts settles).
            Broadcast.objects.filter(pk=notification.broadcast_id).update(
                quota_taken=Greatest(F("quota_taken") - 1, 0)
            )
    logger.info("notification %s canceled", notification_id)


def notifications_mark_canceled(notification_ids: list[Any], delivery_ids: list[int]) -> None:
    """Mark locked, cancelable notifications and their deliveries canceled."""
    now = timezone.now()
    Delivery.objects.filter(id__in=delivery_ids, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.CANCELED, claimed_until=None, updated_at=now
    )
    Notification.objects.filter(id__in=notification_ids).update(
        status=NotificationStatus.CANCELED, completed_at=now
    )


def _uuid_or_404(value: Any) -> Any:
    try:
        return Notification._meta.pk.to_python(value)
    except Exception:  # a malformed id: no such notification
        raise NotFound("No such notification.") from None
