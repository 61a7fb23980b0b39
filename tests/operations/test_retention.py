"""The retention prune on PostgreSQL: ended rows past the window go, in bounded batches that
take no lock beyond their own rows; anything unfinished stays whatever its age."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from keymaster.bulk import objects_insert
from push.delivery import retention
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
from tests.factories import make_app
from tests.figures import figures_record

OLD = 40  # days: past the default 30
ENDED = 50_000  # old, ended notifications, two deliveries each, one receipt and attempt each


def _notifications(app, count: int, *, days: int, status: str) -> list[Notification]:
    at = timezone.now() - timedelta(days=days)
    rows = [
        Notification(
            id=uuid.uuid4(),
            app=app,
            user_id=uuid.uuid4(),
            title="t",
            body="b",
            status=status,
            created_at=at,
            completed_at=None if status == "queued" else at,
        )
        for _ in range(count)
    ]
    objects_insert(rows)
    return rows


def _deliveries(notifications, per: int, status: str) -> list[Delivery]:
    rows = [
        Delivery(
            notification=n,
            app_id=n.app_id,
            device_ref=uuid.uuid4(),
            platform="android",
            status=status,
            created_at=n.created_at,
            updated_at=n.created_at,
            next_attempt_at=n.created_at,
        )
        for n in notifications
        for _ in range(per)
    ]
    objects_insert(rows)
    return rows


def _receipts(deliveries, status: str) -> list[Receipt]:
    rows = [
        Receipt(
            app_id=d.app_id,
            delivery=d,
            webhook_id=f"msg_{uuid.uuid4().hex}",
            payload="{}",
            status=status,
            created_at=d.created_at,
            next_attempt_at=d.created_at,
        )
        for d in deliveries
    ]
    objects_insert(rows)
    objects_insert([ReceiptAttempt(receipt=r, at=r.created_at, status_code=200) for r in rows])
    return rows


@pytest.fixture
def stored(db):
    if connection.vendor != "postgresql":
        pytest.skip("the prune's batches and locks are measured on PostgreSQL")
    app = make_app()[0]
    old = _notifications(app, ENDED, days=OLD, status=NotificationStatus.DELIVERED)
    _receipts(_deliveries(old, 2, DeliveryStatus.DELIVERED)[::2], ReceiptStatus.DELIVERED)
    # Unfinished, and old: a queued notification, one ended but with a receipt still to send,
    # one whose roll-up has not happened although it says ended.
    queued = _notifications(app, 500, days=OLD, status=NotificationStatus.QUEUED)
    _deliveries(queued, 1, DeliveryStatus.QUEUED)
    receipt_due = _notifications(app, 500, days=OLD, status=NotificationStatus.DELIVERED)
    _receipts(_deliveries(receipt_due, 1, DeliveryStatus.DELIVERED), ReceiptStatus.PENDING)
    sending = _notifications(app, 500, days=OLD, status=NotificationStatus.FAILED)
    _deliveries(sending, 1, DeliveryStatus.SENDING)
    recent = _notifications(app, 5_000, days=5, status=NotificationStatus.DELIVERED)
    _receipts(_deliveries(recent, 1, DeliveryStatus.DELIVERED), ReceiptStatus.DELIVERED)
    objects_insert(
        [AuditEvent(app=app, action="old", at=timezone.now() - timedelta(days=400))] * 0
        + [
            AuditEvent(app=app, action="old", at=timezone.now() - timedelta(days=400))
            for _ in range(3000)
        ]
        + [AuditEvent(app=app, action="new") for _ in range(10)]
    )
    kept = {n.id for n in queued + receipt_due + sending + recent}
    return kept


class LockWatch:
    """Watch, from another connection, every lock the prune's backend holds on a table."""

    def __init__(self, pid: int) -> None:
        self.pid, self.modes, self.samples = pid, set(), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        params = connection.get_connection_params()
        with psycopg.connect(
            dbname=params["dbname"],
            user=params.get("user"),
            host=params.get("host"),
            port=params.get("port"),
            autocommit=True,
        ) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT mode FROM pg_locks WHERE pid = %s AND locktype = 'relation'",
                    [self.pid],
                ).fetchall()
                self.modes.update(mode for (mode,) in rows)
                self.samples += 1

    def __enter__(self) -> LockWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.django_db(transaction=True)
def test_prune_deletes_what_ended_before_the_window_and_keeps_the_rest(stored, settings):
    kept = stored
    settings.RETENTION_BATCH = 5_000
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with LockWatch(pid) as watch:
        totals = retention.retention_prune(pause=0)
    assert totals["notifications"] == ENDED
    assert totals["deliveries"] == 2 * ENDED
    assert totals["receipts"] == totals["receipt_attempts"] == ENDED
    assert totals["audit_events"] == 3000
    rows = sum(totals[name] for name in ("notifications", "deliveries", "receipts"))
    rows += totals["receipt_attempts"] + totals["audit_events"]
    figures_record(
        "retention",
        "prune",
        {
            "rows_deleted": rows,
            "notifications_deleted": totals["notifications"],
            "batch": settings.RETENTION_BATCH,
            "batches": totals["batches"],
            "seconds": totals["seconds"],
            "rows_per_second": round(rows / totals["seconds"]),
            "notifications_per_second": round(totals["notifications"] / totals["seconds"]),
        },
    )
    # Bounded: no batch deleted more than RETENTION_BATCH notifications.
    assert totals["batches"] >= ENDED // settings.RETENTION_BATCH
    assert set(Notification.objects.values_list("id", flat=True)) == kept
    assert Delivery.objects.filter(status=DeliveryStatus.QUEUED).count() == 500
    assert Delivery.objects.filter(status=DeliveryStatus.SENDING).count() == 500
    assert Receipt.objects.filter(status=ReceiptStatus.PENDING).count() == 500
    assert AuditEvent.objects.count() == 10
    # Row locks only: nothing that would stop the workers reading or writing the tables.
    assert watch.samples > 0
    assert watch.modes <= {"AccessShareLock", "RowShareLock", "RowExclusiveLock"}, watch.modes


@pytest.mark.django_db(transaction=True)
def test_prune_runs_each_statement_under_a_one_second_timeout(db, settings):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    app = make_app()[0]
    _notifications(app, 3, days=OLD, status=NotificationStatus.DELIVERED)
    seen = []
    real = retention._limits

    def spy() -> None:
        real()
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            seen.append(cursor.fetchone()[0])

    retention._limits = spy
    try:
        assert retention.retention_prune(pause=0)["notifications"] == 3
    finally:
        retention._limits = real
    assert seen and set(seen) == {"1s"}
