"""What an operator watches: the queues' backlog, the workers' heartbeats, readiness.

Every query here runs at each scrape or readiness probe, so each reads one partial index
(`delivery_due`, `receipt_due`) or a table of a few rows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Min
from django.utils import timezone

from push.models import (
    Delivery,
    DeliveryStatus,
    PushConfig,
    Receipt,
    ReceiptStatus,
    WorkerHeartbeat,
)

logger = logging.getLogger(__name__)


def queue_state(*, now: datetime | None = None) -> dict[str, tuple[int, float]]:
    """Per kind (deliveries, receipts): how many are due now, and the oldest one's age (s)."""
    now = now or timezone.now()
    state = {}
    for kind, model, waiting in (
        ("deliveries", Delivery, DeliveryStatus.QUEUED),
        ("receipts", Receipt, ReceiptStatus.PENDING),
    ):
        # The same predicate as the `{name}_due` partial index: read from it alone.
        row = model.objects.filter(status=waiting, next_attempt_at__lte=now).aggregate(
            due=Count("id"), oldest=Min("next_attempt_at")
        )
        age = (now - row["oldest"]).total_seconds() if row["oldest"] else 0.0
        state[kind] = (row["due"], max(age, 0.0))
    return state


def webhooks_disabled() -> int:
    """How many apps have their webhook turned off by a 410."""
    return PushConfig.objects.filter(webhook_disabled_at__isnull=False).count()


def receipts_accepted_at(receipts: list[Receipt]) -> dict[int, datetime]:
    """When each receipt's notification was accepted: from memory, or one query for the rest."""
    known, missing = {}, []
    for receipt in receipts:
        delivery = receipt._state.fields_cache.get("delivery")
        notification = delivery._state.fields_cache.get("notification") if delivery else None
        if notification is not None:
            known[receipt.id] = notification.created_at
        else:
            missing.append(receipt.id)
    if missing:
        known.update(
            Receipt.objects.filter(id__in=missing).values_list(
                "id", "delivery__notification__created_at"
            )
        )
    return known


def worker_beat(name: str, *, now: datetime | None = None) -> None:
    """Record that the worker `name` is alive."""
    WorkerHeartbeat.objects.update_or_create(name=name, defaults={"seen_at": now or timezone.now()})


def workers_seen(*, now: datetime | None = None) -> int:
    """How many workers beat within READY_WORKER_SECONDS."""
    since = (now or timezone.now()) - timedelta(seconds=settings.READY_WORKER_SECONDS)
    return WorkerHeartbeat.objects.filter(seen_at__gte=since).count()


def heartbeats_prune(*, now: datetime | None = None) -> int:
    """Forget workers not heard from for a day (each recycled worker leaves a row)."""
    since = (now or timezone.now()) - timedelta(days=1)
    return WorkerHeartbeat.objects.filter(seen_at__lt=since).delete()[0]


def readiness() -> dict[str, str]:
    """Each readiness check's verdict ("ok" or why not): database, workers, delivery lag."""
    checks = {"database": "ok", "workers": "ok", "delivery_lag": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        seen = workers_seen()
        _, lag = queue_state()["deliveries"]
    except DatabaseError as exc:
        logger.warning("readyz: database unavailable: %s", type(exc).__name__)
        return {"database": "unavailable", "workers": "unknown", "delivery_lag": "unknown"}
    if not seen:
        checks["workers"] = f"no qcluster worker seen in the last {settings.READY_WORKER_SECONDS} s"
    if lag >= settings.READY_MAX_LAG_SECONDS:
        checks["delivery_lag"] = (
            f"the oldest due delivery has waited {int(lag)} s "
            f"(READY_MAX_LAG_SECONDS={settings.READY_MAX_LAG_SECONDS})"
        )
    return checks


def heartbeat_start(sender: object = None, proc_name: str = "", **kwargs: object) -> None:
    """Beat every WORKER_HEARTBEAT_SECONDS from a thread of this worker process, while it lives.

    Connected to django-q2's `post_spawn` (push.apps): a thread, not a scheduled task, because
    django-q2 runs its scheduler every 30 s and a once-a-minute task can run 90 s apart.
    """
    name = f"{socket.gethostname()}:{os.getpid()}"
    threading.Thread(target=_beat_forever, args=(name,), name="heartbeat", daemon=True).start()


def _beat_forever(name: str) -> None:
    stop = threading.Event()
    while True:
        try:
            worker_beat(name)
        except DatabaseError as exc:  # down for now: the next beat tries again
            logger.warning("heartbeat: database unavailable: %s", type(exc).__name__)
            connection.close()
        stop.wait(settings.WORKER_HEARTBEAT_SECONDS)
