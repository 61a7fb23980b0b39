"""Accepting sends: one notification per target user, one delivery per device, atomically.

A send is all or nothing: the notifications, their deliveries, the quota count and the queued
delivery work are written in one transaction. With django-q2's ORM broker the queued tasks are
rows in the same database, so they become visible exactly when the send commits and are lost
only if the send is.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import App
from accounts.selectors import enrolled_user_ids
from keymaster.errors import NotFound, TooManyRequests
from keymaster.ratelimit import Take, Window, counter_peek, counter_preview, counter_take
from push.models import (
    MAX_TTL,
    Delivery,
    Device,
    Notification,
    NotificationStatus,
    PushConfig,
)
from push.services.devices import NotEnrolled, PushDisabled
from push.services.queue import deliveries_enqueue

logger = logging.getLogger(__name__)

DAY = 86_400


@dataclass(frozen=True)
class NotificationDraft:
    """One validated notification to one user, before it is stored."""

    user_id: uuid.UUID
    title: str
    body: str
    data: dict[str, str] = field(default_factory=dict)
    ttl: int = MAX_TTL
    priority: str = "normal"
    collapse_key: str = ""
    urgency: str = ""


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"

    def headers(self) -> dict[str, str]:
        return {
            **super().headers(),
            "RateLimit-Limit": str(self.extra["quota"]),
            "RateLimit-Remaining": str(max(0, self.extra["quota"] - self.extra["used"])),
            "RateLimit-Reset": str(self.retry_after),
        }


def quota_window(config: PushConfig) -> Window:
    """The app's daily quota: epoch-aligned days reset at 00:00 UTC."""
    return Window(f"quota:{config.app_id}", DAY, config.daily_quota)


def notifications_today(config: PushConfig) -> int:
    return counter_peek(quota_window(config))


def _check_enrolled(app: App, drafts: list[NotificationDraft]) -> None:
    wanted = [str(d.user_id) for d in drafts]
    enrolled = enrolled_user_ids(app, wanted)
    missing = [user_id for user_id in dict.fromkeys(wanted) if user_id not in enrolled]
    if missing:
        raise NotEnrolled(
            f"{len(missing)} target user(s) are not enrolled in this app.", user_ids=missing
        )


def notifications_send(
    *, app: App, drafts: list[NotificationDraft], dry_run: bool = False
) -> tuple[list[uuid.UUID], Take]:
    """Accept `drafts` as one all-or-nothing send; return their ids and the quota state."""
    # Only what a send needs: the config's secrets are encrypted, and decrypting them on every
    # send was a fifth of the accept path's CPU (bench/README.md).
    config = PushConfig.objects.filter(app=app).only("app_id", "enabled", "daily_quota").first()
    if config is None or not config.enabled:
        raise PushDisabled("Push notifications are not enabled for this app.")
    _check_enrolled(app, drafts)
    window = quota_window(config)
    if dry_run:
        preview = counter_preview(window, len(drafts))
        if not preview.allowed:
            raise _quota_error(preview)
        return [], preview
    with transaction.atomic():
        ids = _store(app, drafts)
        # Last, so the quota row is locked only for the commit (concurrent sends of one app
        # queue on it); refused here, the whole send rolls back and nothing is counted.
        take = counter_take(window, len(drafts))
        if not take.allowed:
            raise _quota_error(take)
    return ids, take


def _quota_error(take: Take) -> QuotaExceeded:
    return QuotaExceeded(
        f"Daily quota of {take.limit} notifications reached ({take.used} sent today); "
        "it resets at 00:00 UTC.",
        retry_after=take.reset_in,
        quota=take.limit,
        used=take.used,
    )


def _store(app: App, drafts: list[NotificationDraft]) -> list[uuid.UUID]:
    now = timezone.now()
    devices_by_user: dict[str, list[tuple[uuid.UUID, str]]] = defaultdict(list)
    user_ids = {d.user_id for d in drafts}
    for device_id, user_id, platform in Device.objects.filter(
        app=app, user_id__in=user_ids
    ).values_list("id", "user_id", "platform"):
        devices_by_user[str(user_id)].append((device_id, platform))
    notifications, deliveries = [], []
    for draft in drafts:
        devices = devices_by_user.get(str(draft.user_id), [])
        notification = Notification(
            id=uuid.uuid4(),
            app=app,
            user_id=draft.user_id,
            title=draft.title,
            body=draft.body,
            data=draft.data,
            ttl=draft.ttl,
            priority=draft.priority,
            collapse_key=draft.collapse_key,
            urgency=draft.urgency,
            created_at=now,
            status=NotificationStatus.QUEUED if devices else NotificationStatus.NO_DEVICES,
            completed_at=None if devices else now,
        )
        notifications.append(notification)
        deliveries.extend(
            Delivery(
                notification=notification,
                app=app,
                device_id=device_id,
                device_ref=device_id,
                platform=platform,
                created_at=now,
                updated_at=now,
                next_attempt_at=now,
                enqueued_at=now,
            )
            for device_id, platform in devices
        )
    Notification.objects.bulk_create(notifications, batch_size=1000)
    Delivery.objects.bulk_create(deliveries, batch_size=1000)
    deliveries_enqueue([d.id for d in deliveries])
    logger.info(
        "accepted %d notification(s), %d delivery(ies) for app %s",
        len(notifications),
        len(deliveries),
        app.pk,
    )
    return [n.id for n in notifications]


def quota_headers(take: Take) -> dict[str, str]:
    """The RateLimit-* headers of a send answer (draft-ietf-httpapi-ratelimit-headers)."""
    return {
        "RateLimit-Limit": str(take.limit),
        "RateLimit-Remaining": str(take.remaining),
        "RateLimit-Reset": str(max(0, int(take.reset_in))),
    }


def notification_for_app(*, app: App, notification_id: Any) -> Notification:
    """Return one of the app's notifications with its deliveries, or raise 404."""
    try:
        return Notification.objects.prefetch_related("deliveries").get(pk=notification_id, app=app)
    except (Notification.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such notification.") from None
