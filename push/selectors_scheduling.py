"""Reads of scheduled sends, broadcasts and topics (for the API and the Console)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import App
from push.models import Broadcast, BroadcastStatus, Notification, NotificationStatus, Topic

COUNTED = ("scheduled", "queued", "delivered", "failed", "canceled", "muted")


def scheduled_notifications_of_app(app: App, *, limit: int = 100) -> QuerySet[Notification]:
    """The app's notifications not yet due, soonest first (the `notification_app_send_at` index)."""
    return Notification.objects.filter(
        app=app, status=NotificationStatus.QUEUED, send_at__gt=timezone.now()
    ).order_by("send_at")[:limit]


def _counts_by_broadcast(broadcast_ids: list[Any]) -> dict[Any, dict[str, int]]:
    """How many of each broadcast's notifications stand where, for many broadcasts in one query."""
    now = timezone.now()
    queued = Q(status=NotificationStatus.QUEUED)
    rows = (
        Notification.objects.filter(broadcast_id__in=broadcast_ids)
        .values("broadcast_id")
        .annotate(
            scheduled=Count("id", filter=queued & Q(send_at__gt=now)),
            queued=Count("id", filter=queued & (Q(send_at__isnull=True) | Q(send_at__lte=now))),
            delivered=Count("id", filter=Q(status=NotificationStatus.DELIVERED)),
            # A recipient whose devices were removed before the fan-out reached them.
            failed=Count(
                "id",
                filter=Q(status__in=[NotificationStatus.FAILED, NotificationStatus.NO_DEVICES]),
            ),
            canceled=Count("id", filter=Q(status=NotificationStatus.CANCELED)),
            muted=Count("id", filter=Q(status=NotificationStatus.MUTED)),
        )
        .order_by()
    )
    counts = {row["broadcast_id"]: {name: row[name] for name in COUNTED} for row in rows}
    return {pk: counts.get(pk, dict.fromkeys(COUNTED, 0)) for pk in broadcast_ids}


def broadcast_counts(broadcast: Broadcast) -> dict[str, int]:
    """How many of the broadcast's notifications stand where: scheduled, queued, delivered..."""
    return _counts_by_broadcast([broadcast.pk])[broadcast.pk]


def broadcast_status(broadcast: Broadcast, counts: dict[str, int]) -> str:
    """`fanning_out`, `canceled`, or once fanned out `scheduled`, `sending` or `done`."""
    if broadcast.status != BroadcastStatus.DONE:
        return broadcast.status
    if counts["scheduled"]:
        return "scheduled"
    return "sending" if counts["queued"] else "done"


def broadcast_summary(broadcast: Broadcast, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """A broadcast as the API and the Console show it, with its counts (read when not given)."""
    if counts is None:
        counts = broadcast_counts(broadcast)
    return {
        "broadcast_id": broadcast.pk,
        "status": broadcast_status(broadcast, counts),
        "recipients": broadcast.recipients,
        "created_at": broadcast.created_at,
        "send_at": broadcast.send_at,
        "topic": broadcast.topic or None,
        "platforms": broadcast.platforms,
        "title": broadcast.title,
        "counts": counts,
    }


def broadcasts_of_app(app: App, *, limit: int = 20) -> list[dict[str, Any]]:
    """The app's latest broadcasts, newest first, each with its counts (one query for them all)."""
    latest = list(Broadcast.objects.filter(app=app).order_by("-created_at")[:limit])
    counts = _counts_by_broadcast([broadcast.pk for broadcast in latest])
    return [broadcast_summary(broadcast, counts[broadcast.pk]) for broadcast in latest]


def topics_of_app(app: App) -> QuerySet[Topic]:
    """The app's topics by name, each with its member count (`members`)."""
    return Topic.objects.filter(app=app).annotate(members=Count("member_rows")).order_by("name")


def topic_member_ids(topic: Topic, *, limit: int, offset: int) -> list[Any]:
    """A page of the topic's members' user ids, in user id order."""
    return list(
        topic.member_rows.order_by("user_id").values_list("user_id", flat=True)[
            offset : offset + limit
        ]
    )
