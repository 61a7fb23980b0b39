"""Accepting sends: one notification per target user, one delivery per device, atomically.

A send is all or nothing: the notifications, their deliveries, the quota count and the queued
delivery work are written in one transaction. With django-q2's ORM broker the queued tasks are
rows in the same database, so they become visible exactly when the send commits and are lost
only if the send is.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import App, Enrollment
from keymaster.bulk import objects_insert
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
from push.services.limits import payload_check
from push.services.queue import deliveries_enqueue

logger = logging.getLogger(__name__)

DAY = 86_400
# A send reads only `enabled` and `daily_quota` of the config: decrypting its secrets on every
# send was a fifth of the accept path's CPU (bench/README.md).
CONFIG_SECRETS = ("webhook_secret", "vapid_private_key", "fcm_service_account")


@dataclass(frozen=True)
class NotificationDraft:
    """One validated notification to one user, before it is stored."""

    user_id: uuid.UUID
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)
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


@functools.cache
def _devices_sql() -> str:
    enrollment, device = Enrollment._meta.db_table, Device._meta.db_table
    # Table names are ours and every value is a parameter.
    return (
        f"SELECT e.user_id, d.id, d.platform, d.transport FROM {enrollment} e"  # noqa: S608
        f" LEFT JOIN {device} d ON d.user_id = e.user_id AND d.app_id = e.app_id"
        " WHERE e.app_id = %s AND e.user_id IN ({})"
    )


def _devices_of(app: App, drafts: list[NotificationDraft]) -> dict[str, list[tuple[Any, str, str]]]:
    """Each target user's devices in `app`, in one query that also proves each is enrolled.

    SQL written once: building this join through the ORM (a FilteredRelation) cost 0.3 ms of
    CPU per send, an eighth of a single send (bench/README.md, item 18).
    """
    wanted = list(dict.fromkeys(str(d.user_id) for d in drafts))
    user_pk, device_pk = Enrollment._meta.get_field("user").target_field, Device._meta.pk
    params = [App._meta.pk.get_db_prep_value(app.pk, connection)]
    params += [user_pk.get_db_prep_value(user_id, connection) for user_id in wanted]
    with connection.cursor() as cursor:
        cursor.execute(_devices_sql().format(", ".join(["%s"] * len(wanted))), params)
        rows = cursor.fetchall()
    devices: dict[str, list[tuple[Any, str, str]]] = {}
    for user_id, device_id, platform, transport in rows:
        # The fields read their own values back: SQLite hands UUIDs over as hex text.
        mine = devices.setdefault(str(user_pk.to_python(user_id)), [])
        if device_id is not None:
            mine.append((device_pk.to_python(device_id), platform, transport))
    missing = [user_id for user_id in wanted if user_id not in devices]
    if missing:
        raise NotEnrolled(
            f"{len(missing)} target user(s) are not enrolled in this app.", user_ids=missing
        )
    return devices


def notifications_send(
    *,
    app: App,
    drafts: list[NotificationDraft],
    dry_run: bool = False,
    config: PushConfig | None = None,
    field_prefix: str = "",
) -> tuple[list[uuid.UUID], Take]:
    """Accept `drafts` as one all-or-nothing send; return their ids and the quota state.

    `config`: the app's push config, when the caller has just loaded it (the send views load
    it with the app, in one query); otherwise it is read here. `field_prefix`: how the
    request names a draft in errors (``notifications[{index}].``).
    """
    if config is None:
        config = PushConfig.objects.filter(app=app).defer(*CONFIG_SECRETS).first()
    if config is None or not config.enabled:
        raise PushDisabled("Push notifications are not enabled for this app.")
    devices = _devices_of(app, drafts)
    payload_check(
        drafts,
        [{transport for _, _, transport in devices[str(d.user_id)]} for d in drafts],
        track_opens=config.track_opens,
        field_prefix=field_prefix,
    )
    window = quota_window(config)
    if dry_run:
        preview = counter_preview(window, len(drafts))
        if not preview.allowed:
            raise _quota_error(preview)
        return [], preview
    with transaction.atomic():
        ids = _store(app, drafts, devices)
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


def _store(
    app: App, drafts: list[NotificationDraft], devices_of: dict[str, list[tuple[Any, str, str]]]
) -> list[uuid.UUID]:
    now = timezone.now()
    notifications, deliveries = [], []
    for draft in drafts:
        devices = devices_of[str(draft.user_id)]
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
            for device_id, platform, _ in devices
        )
    objects_insert(notifications)
    objects_insert(deliveries)
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
