"""Broadcasts: one send to every user of an app who has a device (of some platforms, in a topic).

Accepting one writes a single row, takes its quota and queues the fan-out task
(push.delivery.fanout), all in one transaction, so the answer comes at once whatever the number
of recipients. The fan-out makes the notifications later, in chunks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django_q.tasks import async_task

from accounts.models import App, Enrollment
from keymaster.errors import NotFound
from keymaster.ratelimit import counter_preview, counter_take
from push.models import (
    Broadcast,
    BroadcastStatus,
    Delivery,
    DeliveryStatus,
    Device,
    Notification,
    NotificationStatus,
    PushConfig,
    Topic,
    TopicMember,
)
from push.services.errors import PushDisabled
from push.services.limits import payload_check, transports_of_platforms
from push.services.notifications import (
    CONFIG_SECRETS,
    Content,
    QuotaExceeded,
    content_of,
    quota_day,
    quota_window,
)
from push.services.scheduling import notifications_mark_canceled, quota_give_back

logger = logging.getLogger(__name__)

FAN_OUT_TASK = "push.delivery.fanout.broadcast_fan_out"


@dataclass(frozen=True)
class BroadcastDraft(Content):
    """A validated broadcast, before it is stored."""

    topic: str = ""
    platforms: tuple[str, ...] = ()


@dataclass(frozen=True)
class BroadcastAccepted:
    broadcast_id: Any
    recipients: int
    muted: int


def broadcast_audience(
    *, app_id: Any, enrolled_by: datetime, topic_id: Any = None, platforms: Any = ()
) -> QuerySet[Enrollment]:
    """The enrollments a broadcast reaches: with a device (of `platforms`), in the topic.

    Only users enrolled by `enrolled_by` (the broadcast's acceptance): a fan-out resumed after
    a crash goes through the same users.
    """
    devices = Device.objects.filter(app_id=OuterRef("app_id"), user_id=OuterRef("user_id"))
    if platforms:
        devices = devices.filter(platform__in=list(platforms))
    audience = Enrollment.objects.filter(app_id=app_id, created_at__lte=enrolled_by)
    audience = audience.filter(Exists(devices))
    if topic_id is not None:
        members = TopicMember.objects.filter(topic_id=topic_id, user_id=OuterRef("user_id"))
        audience = audience.filter(Exists(members))
    return audience


def broadcast_send(*, app: App, draft: BroadcastDraft, dry_run: bool = False) -> BroadcastAccepted:
    """Accept a broadcast (or, with `dry_run`, count it); refuse it whole past the quota."""
    config = PushConfig.objects.filter(app=app).defer(*CONFIG_SECRETS).first()
    if config is None or not config.enabled:
        raise PushDisabled("Push notifications are not enabled for this app.")
    # Measured before anything is stored or counted, as every send is (and in a dry run).
    transports = transports_of_platforms(draft.platforms)
    payload_check([draft], [transports], track_opens=config.track_opens)
    topic_id = None
    if draft.topic:
        topic_id = Topic.objects.filter(app=app, name=draft.topic).values_list("id", flat=True)
        topic_id = topic_id.first()
        if topic_id is None:
            raise NotFound(f"No topic {draft.topic!r} in this app.")
    now = timezone.now()
    audience = broadcast_audience(
        app_id=app.pk, enrolled_by=now, topic_id=topic_id, platforms=draft.platforms
    )
    counts = audience.aggregate(total=Count("id"), muted=Count("id", filter=Q(muted=True)))
    recipients, muted = counts["total"], counts["muted"]
    sent = recipients - muted  # muted users' notifications are recorded, not counted
    window = quota_window(config)
    due = max(window.start(quota_day(draft.send_at)), quota_day(None))
    if dry_run:
        _check_quota(counter_preview(window, sent, now=due), sent)
        return BroadcastAccepted(None, recipients, muted)
    with transaction.atomic():
        broadcast = Broadcast.objects.create(
            app=app,
            **content_of(draft),
            topic=draft.topic,
            platforms=list(draft.platforms),
            recipients=recipients,
            quota_taken=sent,
            created_at=now,
            updated_at=now,
        )
        if sent:
            _check_quota(counter_take(window, sent, now=due), sent)
        broadcast_fan_out_enqueue(broadcast.pk)
    logger.info("broadcast %s accepted: %d recipients (%d muted)", broadcast.pk, recipients, muted)
    return BroadcastAccepted(broadcast.pk, recipients, muted)


def broadcast_fan_out_enqueue(broadcast_id: Any) -> None:
    """Queue the fan-out of a broadcast (safe to queue twice: it resumes where it is)."""
    async_task(FAN_OUT_TASK, str(broadcast_id), task_name="broadcast_fan_out", group="push")


def _check_quota(take: Any, wanted: int) -> None:
    if take.allowed:
        return
    left = max(0, take.limit - take.used)
    raise QuotaExceeded(
        f"The broadcast has {wanted} recipients but only {left} notifications are left of the "
        f"daily quota of {take.limit}; it resets at 00:00 UTC.",
        retry_after=take.reset_in,
        quota=take.limit,
        used=take.used,
        recipients=wanted,
        remaining=left,
    )


def broadcast_for_app(*, app: App, broadcast_id: Any) -> Broadcast:
    """Return one of the app's broadcasts, or raise 404."""
    try:
        return Broadcast.objects.get(pk=broadcast_id, app=app)
    except (Broadcast.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such broadcast.") from None


def broadcast_cancel(*, app: App, broadcast_id: Any) -> Broadcast:
    """Stop the fan-out and cancel every notification of it not yet handed to a provider."""
    broadcast_for_app(app=app, broadcast_id=broadcast_id)
    with transaction.atomic():
        # Waits for a fan-out chunk being written to commit; the fan-out then stops.
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast_id)
        if broadcast.status != BroadcastStatus.CANCELED:
            broadcast.status = BroadcastStatus.CANCELED
            broadcast.completed_at = broadcast.completed_at or timezone.now()
        # A worker holding a delivery has it claimed: skipped, it is being sent.
        untouched = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(notification__broadcast=broadcast, status=DeliveryStatus.QUEUED, attempts=0)
            .order_by("id")
            .values_list("id", "notification_id")
        )
        candidates = {notification_id for _, notification_id in untouched}
        locked = [delivery_id for delivery_id, _ in untouched]
        handed = set(
            Delivery.objects.filter(notification_id__any=list(candidates))
            .exclude(id__any=locked)
            .values_list("notification_id", flat=True)
        )
        cancel = candidates - handed
        queued = Notification.objects.filter(id__any=list(cancel), status=NotificationStatus.QUEUED)
        cancel = set(queued.values_list("id", flat=True))
        notifications_mark_canceled(list(cancel), [d for d, n in untouched if n in cancel])
        broadcast_settle_quota(broadcast)
        broadcast.save()
    logger.info("broadcast %s canceled: %d notifications", broadcast.pk, len(cancel))
    return broadcast


def broadcast_settle_quota(broadcast: Broadcast) -> None:
    """Give back the quota held for recipients it did not send to (fan-out over or stopped).

    Called with the broadcast locked; the caller saves it.
    """
    if broadcast.status == BroadcastStatus.FANNING_OUT:
        return
    used = (
        Notification.objects.filter(broadcast=broadcast)
        .exclude(status__in=[NotificationStatus.MUTED, NotificationStatus.CANCELED])
        .count()
    )
    quota_give_back(
        app_id=broadcast.app_id, due=broadcast.send_at, amount=broadcast.quota_taken - used
    )
    broadcast.quota_taken = min(used, broadcast.quota_taken)
