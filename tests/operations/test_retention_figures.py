"""The README's retention figures, measured on PostgreSQL: bytes per notification as stored
by a real run (sent, delivered through the FCM fake, receipted to the webhook fake), with one
and with two devices per user. Written to artifacts/reliability/retention.json."""

from __future__ import annotations

import pytest
from django.db import connection

from keymaster.bulk import objects_insert
from push.delivery.runtime import runtime_reset
from push.models import Delivery, DeliveryStatus, Notification, Receipt, ReceiptAttempt
from push.services.notifications import NotificationDraft, notifications_send
from tests.drain import drain
from tests.factories import enroll, fcm_device, fcm_token, make_push_app, make_user
from tests.figures import figures_record

USERS = 500
SENDS = 4  # notifications per user
TABLES = [Notification, Delivery, Receipt, ReceiptAttempt]


def _bytes(model) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
        return cursor.fetchone()[0]


def _vacuum(full: bool) -> None:
    with connection.cursor() as cursor:
        for model in TABLES:
            cursor.execute(f"VACUUM {'FULL ' if full else ''}ANALYZE {model._meta.db_table}")


@pytest.mark.postgres
@pytest.mark.parametrize("devices", [1, 2])
@pytest.mark.django_db(transaction=True)
def test_bytes_per_notification(providers, devices, settings):
    if connection.vendor != "postgresql":
        pytest.skip("measured on PostgreSQL")
    # Every message delivered at its first attempt, even on a loaded machine: a timeout would
    # leave a retry waiting out its backoff, and the rows measured would not be a full run's.
    settings.PUSH_SEND_TIMEOUT = 60.0
    runtime_reset()
    app = make_push_app(webhook_url=f"{providers['webhook'].url}/hook")
    users = [make_user() for _ in range(USERS)]
    enroll(app, *users)
    objects_insert(
        [fcm_device(app, u, fcm_token(f"{u.id}-{n}")) for u in users for n in range(devices)]
    )
    empty = {model: _bytes(model) for model in TABLES}
    data = {"kind": "chat", "thread": "c0a80164-7f3a-4b8e"}
    for round_ in range(SENDS):
        drafts = [
            NotificationDraft(
                user_id=u.id,
                title=f"New message from Ada ({round_})",
                body="Are we still on for tomorrow at ten? I booked the small room upstairs.",
                data=data,
            )
            for u in users
        ]
        for start in range(0, len(drafts), 500):
            notifications_send(app=app, drafts=drafts[start : start + 500])
        drain(max_rounds=200)
    count = USERS * SENDS
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == count * devices
    assert Receipt.objects.count() == count * devices
    _vacuum(full=False)
    written = {m._meta.model_name: _bytes(m) - empty[m] for m in TABLES}
    _vacuum(full=True)
    compact = {m._meta.model_name: _bytes(m) for m in TABLES}
    figures_record(
        "retention",
        f"bytes_per_notification_{devices}_device{'s' if devices > 1 else ''}",
        {
            "notifications": count,
            "devices_per_user": devices,
            "bytes_per_notification_as_run": round(sum(written.values()) / count),
            "bytes_per_notification_compacted": round(sum(compact.values()) / count),
            "as_run_by_table": {k: round(v / count) for k, v in written.items()},
            "compacted_by_table": {k: round(v / count) for k, v in compact.items()},
        },
    )
    assert sum(compact.values()) > 0
