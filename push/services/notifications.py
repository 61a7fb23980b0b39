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
from collections import Counter as Tally
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import App, Enrollment
from keymaster.bulk import objects_insert
from keymaster.ratelimit import Take, counter_preview, counter_take
from push.delivery.queue import deliveries_enqueue, deliveries_enqueue_at
from push.models import (
    MAX_TTL,
    Delivery,
    Device,
    Notification,
    NotificationStatus,
    PushConfig,
)
from push.selectors import quota_window
from push.services.errors import NotEnrolled, PushDisabled, QuotaExceeded
from push.services.limits import payload_check

logger = logging.getLogger(__name__)

# A send reads only `enabled` and `daily_quota` of the config: decrypting its secrets on every
# send was a fifth of the accept path's CPU (bench/README.md).
CONFIG_SECRETS = ("webhook_secret", "vapid_private_key", "fcm_service_account")


@dataclass(frozen=True)
class Content:
    """The validated content and delivery options a send and a broadcast share."""

    title: str
    body: str
    data: dict[str, str] = field(default_factory=dict)
    ttl: int = MAX_TTL
    priority: str = "normal"
    collapse_key: str = ""
    urgency: str = ""
    send_at: datetime | None = None  # None: now


@dataclass(frozen=True)
class NotificationDraft(Content):
    """One validated notification to one user, before it is stored."""

    user_id: uuid.UUID = field(kw_only=True)


@dataclass
class Recipients:
    """Each target user's devices in the app, and those who muted it."""

    devices: dict[str, list[tuple[Any, ...]]]  # (device id, platform, transport)
    muted: set[str]


def quota_day(send_at: datetime | None) -> float:
    """The instant whose UTC day a send counts against: the day it is due."""
    return (send_at or timezone.now()).timestamp()


def quota_take_by_day(config: PushConfig, due: list[datetime | None], *, preview: bool) -> Take:
    """Count one notification per entry of `due` on the day it is due; raise 429 if refused.

    Takes are made in day order; one refused raises, and the caller's transaction rolls back
    the others. Returns today's state (the RateLimit-* headers).
    """
    window = quota_window(config)
    now = quota_day(None)
    days = Tally(window.start(quota_day(at)) for at in due)
    today = None
    for start, amount in sorted(days.items()):
        take = (counter_preview if preview else counter_take)(window, amount, now=max(start, now))
        if not take.allowed:
            raise quota_error(take)
        if start == window.start(now):
            today = take
    return today or counter_preview(window, 0)


@functools.cache
def _devices_sql() -> str:
    enrollment, device = Enrollment._meta.db_table, Device._meta.db_table
    # Table names are ours and every value is a parameter.
    return (
        f"SELECT e.user_id, d.id, d.platform, e.muted, d.transport FROM {enrollment} e"  # noqa: S608
        f" LEFT JOIN {device} d ON d.user_id = e.user_id AND d.app_id = e.app_id"
        " WHERE e.app_id = %s AND e.user_id IN ({})"
    )


def _devices_of(app: App, drafts: list[NotificationDraft]) -> Recipients:
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
    devices: dict[str, list[tuple[Any, ...]]] = {}
    muted = set()
    for user_id, device_id, platform, is_muted, transport in rows:
        # The fields read their own values back: SQLite hands UUIDs over as hex text.
        user = str(user_pk.to_python(user_id))
        mine = devices.setdefault(user, [])
        if is_muted:
            muted.add(user)
        if device_id is not None:
            mine.append((device_pk.to_python(device_id), platform, transport))
    missing = [user_id for user_id in wanted if user_id not in devices]
    if missing:
        raise NotEnrolled(
            f"{len(missing)} target user(s) are not enrolled in this app.", user_ids=missing
        )
    return Recipients(devices, muted)


def notifications_send(
    *,
    app: App,
    drafts: list[NotificationDraft],
    dry_run: bool = False,
    config: PushConfig | None = None,
    only_devices: frozenset[uuid.UUID] | None = None,
    field_prefix: str = "",
) -> tuple[list[uuid.UUID], Take]:
    """Accept `drafts` as one all-or-nothing send; return their ids and the quota state.

    `config`: the app's push config, when the caller has just loaded it (the send views load
    it with the app, in one query); otherwise it is read here. `only_devices`: send to these
    of the users' devices only (the Console's test send to one device). `field_prefix`: how
    the request names a draft in errors (``notifications[{index}].``).
    """
    if config is None:
        config = PushConfig.objects.filter(app=app).defer(*CONFIG_SECRETS).first()
    if config is None or not config.enabled:
        raise PushDisabled("Push notifications are not enabled for this app.")
    recipients = _devices_of(app, drafts)
    if only_devices is not None:
        for user, of in recipients.devices.items():
            recipients.devices[user] = [d for d in of if d[0] in only_devices]
    payload_check(
        drafts,
        [{transport for *_, transport in recipients.devices[str(d.user_id)]} for d in drafts],
        track_opens=config.track_opens,
        field_prefix=field_prefix,
    )
    # A muted user's notification is recorded but not counted.
    due = [d.send_at for d in drafts if str(d.user_id) not in recipients.muted]
    if dry_run:
        return [], quota_take_by_day(config, due, preview=True)
    with transaction.atomic():
        ids = _store(app, drafts, recipients)
        # Last, so the quota row is locked only for the commit (concurrent sends of one app
        # queue on it); refused here, the whole send rolls back and nothing is counted.
        take = quota_take_by_day(config, due, preview=False)
    return ids, take


def quota_error(take: Take) -> QuotaExceeded:
    return QuotaExceeded(
        f"Daily quota of {take.limit} notifications reached ({take.used} sent today); "
        "it resets at 00:00 UTC.",
        retry_after=take.reset_in,
        quota=take.limit,
        used=take.used,
    )


def _store(app: App, drafts: list[NotificationDraft], recipients: Recipients) -> list[uuid.UUID]:
    now = timezone.now()
    notifications, deliveries = [], []
    for draft in drafts:
        user = str(draft.user_id)
        muted = user in recipients.muted
        devices = [] if muted else recipients.devices[user]
        notification = notification_new(
            app_id=app.pk,
            user_id=draft.user_id,
            content=content_of(draft),
            now=now,
            muted=muted,
            has_devices=bool(devices),
        )
        notifications.append(notification)
        deliveries.extend(deliveries_for(notification, devices, now))
    notifications_insert(notifications, deliveries)
    logger.info(
        "accepted %d notification(s), %d delivery(ies) for app %s",
        len(notifications),
        len(deliveries),
        app.pk,
    )
    return [n.id for n in notifications]


def notification_new(
    *,
    app_id: Any,
    user_id: Any,
    content: dict[str, Any],
    now: datetime,
    muted: bool,
    has_devices: bool,
    broadcast_id: Any = None,
) -> Notification:
    """An unsaved notification of `content` (content_of) to one user, accepted `now`.

    Muted, or without a device, it is complete at once.
    """
    if muted:
        status = NotificationStatus.MUTED
    else:
        status = NotificationStatus.QUEUED if has_devices else NotificationStatus.NO_DEVICES
    return Notification(
        id=uuid.uuid4(),
        app_id=app_id,
        user_id=user_id,
        **content,
        created_at=now,
        broadcast_id=broadcast_id,
        status=status,
        completed_at=now if status != NotificationStatus.QUEUED else None,
    )


def notifications_insert(notifications: list[Notification], deliveries: list[Delivery]) -> None:
    """Write new notifications and their deliveries (COPY), and queue the deliveries' work."""
    objects_insert(notifications)
    objects_insert(deliveries)
    deliveries_queue(deliveries)


CONTENT = tuple(item.name for item in fields(Content))


def content_of(source: Any) -> dict[str, Any]:
    """The content and delivery options of a draft or broadcast, as Notification fields."""
    return {name: getattr(source, name) for name in CONTENT}


def deliveries_for(
    notification: Notification, devices: list[tuple[Any, str]], now: datetime
) -> list[Delivery]:
    """One delivery per device; a scheduled one is not due (nor queued) before `send_at`."""
    due = notification.send_at or now
    return [
        Delivery(
            notification=notification,
            app_id=notification.app_id,
            device_id=device_id,
            device_ref=device_id,
            platform=platform,
            created_at=now,
            updated_at=now,
            next_attempt_at=due,
            enqueued_at=due,
        )
        for device_id, platform, *_ in devices
    ]


def deliveries_queue(deliveries: list[Delivery]) -> None:
    """Queue the stored deliveries' work: now, or invisible to workers until they are due."""
    by_due = defaultdict(list)
    for delivery in deliveries:
        by_due[delivery.notification.send_at].append(delivery.id)
    for send_at, ids in by_due.items():
        deliveries_enqueue_due(ids, send_at)


def deliveries_enqueue_due(delivery_ids: list[int], send_at: datetime | None) -> None:
    """Queue stored deliveries' work: now, or (`send_at`) invisible to workers until then."""
    if send_at is None:
        deliveries_enqueue(delivery_ids)
    else:
        deliveries_enqueue_at(delivery_ids, send_at)
