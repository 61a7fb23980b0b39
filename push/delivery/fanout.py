"""A broadcast's fan-out: one notification per recipient, made in chunks by tasks.

The recipients are gone through in user id order; each chunk's notifications, deliveries,
queued delivery work and the cursor past them commit together, under a lock on the broadcast
row (two tasks on one broadcast take turns, each from where the other left off). A worker
killed mid-chunk leaves nothing of that chunk, and whoever runs the task next (django-q2 hands
it out again; the sweeper queues it again) starts after the last committed chunk. The unique
(broadcast, user) constraint makes a second notification for a user fail rather than exist.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from keymaster import metrics
from keymaster.outage import through_db_outage
from push.delivery.fanout_sql import chunk_insert
from push.models import Broadcast, BroadcastStatus, Device, Topic
from push.services.broadcasts import (
    broadcast_audience,
    broadcast_fan_out_enqueue,
    broadcast_settle_quota,
)
from push.services.notifications import (
    content_of,
    deliveries_enqueue_due,
    deliveries_for,
    notification_new,
    notifications_insert,
)

logger = logging.getLogger(__name__)


@through_db_outage
def broadcast_fan_out(broadcast_id: str, *, set_based: bool | None = None) -> int:
    """Make the broadcast's remaining notifications, chunk by chunk; return how many.

    `set_based`: make each chunk in one SQL statement (push.delivery.fanout_sql), the default
    on PostgreSQL, or through the ORM (the default elsewhere: SQLite).
    """
    made = 0
    while True:
        step = broadcast_fan_out_chunk(broadcast_id, set_based=set_based)
        if step is None:
            return made
        made += step


def broadcast_fan_out_chunk(broadcast_id: str, *, set_based: bool | None = None) -> int | None:
    """Make the next chunk's notifications; None when there is nothing left to do here."""
    if set_based is None:
        set_based = connection.vendor == "postgresql"
    with transaction.atomic():
        # Waits while another task writes a chunk (a task handed out twice, a cancel), then
        # goes on from its cursor: skipping instead could leave the fan-out to the sweeper.
        broadcast = Broadcast.objects.select_for_update().filter(pk=broadcast_id).first()
        if broadcast is None or broadcast.status != BroadcastStatus.FANNING_OUT:
            return None
        audience = broadcast_audience(
            app_id=broadcast.app_id,
            enrolled_by=broadcast.created_at,
            topic_id=_topic_id(broadcast),
            platforms=broadcast.platforms,
        )
        if broadcast.cursor is not None:
            audience = audience.filter(user_id__gt=broadcast.cursor)
        audience = audience.order_by("user_id")[: settings.PUSH_BROADCAST_CHUNK]
        now = timezone.now()
        if set_based:
            made, muted, last_user, delivery_ids = chunk_insert(broadcast, audience, now)
            deliveries_enqueue_due(delivery_ids, broadcast.send_at)
            queued = made - muted
            metrics.broadcast_notifications_made(["muted"] * muted + ["queued"] * queued)
        else:
            users = list(audience.values_list("user_id", "muted"))
            made, last_user = len(users), users[-1][0] if users else None
            if users:
                _notifications_make(broadcast, users, now)
        if not made:
            broadcast.status, broadcast.completed_at = BroadcastStatus.DONE, now
            broadcast_settle_quota(broadcast)
            broadcast.save(update_fields=["status", "completed_at", "quota_taken", "updated_at"])
            logger.info("broadcast %s: fan-out done", broadcast.pk)
            return None
        broadcast.cursor, broadcast.updated_at = last_user, now
        broadcast.save(update_fields=["cursor", "updated_at"])
    return made


def _topic_id(broadcast: Broadcast) -> Any:
    if not broadcast.topic:
        return None
    # A topic deleted since: nobody is in it any more.
    found = Topic.objects.filter(app_id=broadcast.app_id, name=broadcast.topic).first()
    return found.pk if found else -1


def _notifications_make(broadcast: Broadcast, users: list[tuple[Any, bool]], now: datetime) -> None:
    devices = Device.objects.filter(app_id=broadcast.app_id, user_id__any=[u for u, _ in users])
    if broadcast.platforms:
        devices = devices.filter(platform__in=broadcast.platforms)
    devices_of: dict[Any, list[tuple[Any, str]]] = defaultdict(list)
    for user_id, device_id, platform in devices.values_list("user_id", "id", "platform"):
        devices_of[user_id].append((device_id, platform))
    content = content_of(broadcast)
    notifications, deliveries = [], []
    for user_id, muted in users:
        mine = [] if muted else devices_of[user_id]
        notification = notification_new(
            app_id=broadcast.app_id,
            user_id=user_id,
            content=content,
            now=now,
            muted=muted,
            has_devices=bool(mine),
            broadcast_id=broadcast.pk,
        )
        notifications.append(notification)
        deliveries.extend(deliveries_for(notification, mine, now))
    notifications_insert(notifications, deliveries)
    metrics.broadcast_notifications_made(n.status for n in notifications)


def broadcasts_resume(*, now: datetime | None = None, quiet_for: int = 60) -> int:
    """Queue again the fan-outs that made no progress for `quiet_for` seconds (the sweeper)."""
    since = (now or timezone.now()) - timedelta(seconds=quiet_for)
    stalled = list(
        Broadcast.objects.filter(
            status=BroadcastStatus.FANNING_OUT, updated_at__lt=since
        ).values_list("id", flat=True)[:1000]
    )
    for broadcast_id in stalled:
        broadcast_fan_out_enqueue(broadcast_id)
    if stalled:
        logger.warning("queued %d stalled broadcast fan-outs again", len(stalled))
    return len(stalled)
