"""Send later and cancel: send_at on every send endpoint, the quota of the due day, cancels."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from keymaster.models import Counter
from push.delivery.deliveries import deliveries_claim
from push.models import Broadcast, Delivery, DeliveryStatus, Notification
from push.selectors import DAY
from tests.drain import drain
from tests.factories import app_client, enroll, make_push_app, make_user, register


@pytest.fixture
def app(db):
    return make_push_app(daily_quota=5)


@pytest.fixture
def user(app):
    user = make_user()
    enroll(app, user)
    register(user, app)
    return user


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _send(app, user, **fields):
    return app_client(app).post(
        "/push/send", {"user_id": str(user.id), "title": "t", "body": "b", **fields}
    )


def _status(app, notification_id):
    return app_client(app).get(f"/push/notifications/{notification_id}").json()


def _cancel(app, notification_id):
    return app_client(app).post(f"/push/notifications/{notification_id}/cancel")


def _used(app, day_of: datetime) -> int:
    start = int(day_of.timestamp()) - int(day_of.timestamp()) % DAY
    row = Counter.objects.filter(key=f"quota:{app.app_id}", window_start=start).first()
    return row.count if row else 0


def test_scheduled_send_is_delivered_after_its_time_and_not_before(app, user, providers):
    send_at = datetime.now(UTC) + timedelta(seconds=2)
    answer = _send(app, user, send_at=send_at.isoformat())
    assert answer.status_code == 202
    notification_id = answer.json()["notification_id"]
    shown = _status(app, notification_id)
    assert shown["status"] == "scheduled"
    assert datetime.fromisoformat(shown["send_at"].replace("Z", "+00:00")) == send_at
    drain(due_only=True)  # a worker polling now finds nothing due
    assert not providers["fcm"].messages
    assert Delivery.objects.get().status == DeliveryStatus.QUEUED
    time.sleep(max(0.0, (send_at - datetime.now(UTC)).total_seconds()) + 0.1)
    drain(due_only=True)
    assert len(providers["fcm"].messages) == 1
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.updated_at >= send_at
    assert _status(app, notification_id)["status"] == "delivered"


def test_send_at_in_the_past_or_within_a_second_sends_now(app, user, providers):
    for send_at in (_at(-3600), _at(0.5)):
        answer = _send(app, user, send_at=send_at)
        assert answer.status_code == 202
        assert _status(app, answer.json()["notification_id"])["send_at"] is None
    drain()
    assert len(providers["fcm"].messages) == 2


@pytest.mark.parametrize(
    ("send_at", "message"),
    [
        ("2026-12-24T08:00:00", "offset"),
        ("tomorrow", "format"),
        (12, "format"),
    ],
)
def test_send_at_without_an_offset_or_not_a_date_is_a_400_naming_it(app, user, send_at, message):
    answer = _send(app, user, send_at=send_at)
    assert answer.status_code == 400
    assert "send_at" in answer.json()["error"]["fields"]
    assert message in answer.json()["error"]["fields"]["send_at"][0].lower()


def test_send_at_more_than_30_days_ahead_is_a_400(app, user):
    answer = _send(app, user, send_at=_at(31 * DAY))
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["send_at"] == ["Must be at most 30 days ahead."]


def test_bulk_and_batch_take_send_at(app, user):
    other = make_user()
    enroll(app, other)
    client = app_client(app)
    bulk = client.post(
        "/push/send/bulk",
        {"user_ids": [str(user.id), str(other.id)], "title": "t", "body": "b", "send_at": _at(60)},
    )
    batch = client.post(
        "/push/send/batch",
        {
            "notifications": [
                {"user_id": str(user.id), "title": "a", "body": "b", "send_at": _at(120)},
                {"user_id": str(other.id), "title": "now", "body": "b"},
            ]
        },
    )
    assert bulk.status_code == batch.status_code == 202
    statuses = [_status(app, i)["status"] for i in bulk.json()["notification_ids"]]
    assert statuses == ["scheduled", "no_devices"]  # the other user has no device
    first, second = batch.json()["notification_ids"]
    assert _status(app, first)["status"] == "scheduled"
    assert _status(app, second)["send_at"] is None


def test_ttl_counts_from_send_at(app, user):
    notification_id = _send(app, user, send_at=_at(600), ttl=60).json()["notification_id"]
    notification = Notification.objects.get(pk=notification_id)
    assert notification.expires_at == notification.send_at + timedelta(seconds=60)


def test_scheduled_send_counts_against_the_day_it_is_due(app, user):
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    for _ in range(5):
        assert _send(app, user, send_at=tomorrow.isoformat()).status_code == 202
    assert _used(app, tomorrow) == 5 and _used(app, datetime.now(UTC)) == 0
    refused = _send(app, user, send_at=(tomorrow + timedelta(minutes=1)).isoformat())
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
    assert _send(app, user).status_code == 202  # today is untouched


def test_cancel_before_it_is_due_gives_the_quota_back(app, user, providers):
    notification_id = _send(app, user, send_at=_at(3)).json()["notification_id"]
    assert _used(app, datetime.now(UTC)) == 1
    answer = _cancel(app, notification_id)
    assert answer.status_code == 200
    assert answer.json() == {"notification_id": notification_id, "status": "canceled"}
    assert _used(app, datetime.now(UTC)) == 0
    assert _cancel(app, notification_id).status_code == 200  # idempotent
    assert _status(app, notification_id)["status"] == "canceled"
    time.sleep(3.1)
    drain(due_only=True)
    assert not providers["fcm"].messages
    assert Delivery.objects.get().status == DeliveryStatus.CANCELED


def test_cancel_while_queued_before_any_worker_took_it(app, user, providers):
    notification_id = _send(app, user).json()["notification_id"]
    assert _cancel(app, notification_id).status_code == 200
    drain()
    assert not providers["fcm"].messages


def test_cancel_during_sending_is_a_409_with_the_status(app, user):
    notification_id = _send(app, user).json()["notification_id"]
    deliveries_claim([Delivery.objects.get().id])  # a worker has it: handed to a provider
    answer = _cancel(app, notification_id)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "not_cancelable"
    assert answer.json()["error"]["status"] == "queued"
    assert _used(app, datetime.now(UTC)) == 1


def test_cancel_after_delivery_is_a_409(app, user, providers):
    notification_id = _send(app, user).json()["notification_id"]
    drain()
    answer = _cancel(app, notification_id)
    assert answer.status_code == 409
    assert answer.json()["error"]["status"] == "delivered"


def test_cancel_of_another_apps_notification_is_a_404(app, user):
    notification_id = _send(app, user, send_at=_at(60)).json()["notification_id"]
    other = make_push_app()
    assert _cancel(other, notification_id).status_code == 404
    assert _cancel(app, "not-a-uuid").status_code == 404


def test_the_consoles_selectors_list_scheduled_sends_and_broadcasts(app, user):
    from push.selectors_scheduling import broadcasts_of_app, scheduled_notifications_of_app

    later = _send(app, user, send_at=_at(600)).json()["notification_id"]
    sooner = _send(app, user, send_at=_at(60)).json()["notification_id"]
    _send(app, user)  # now: not scheduled
    assert [str(n.id) for n in scheduled_notifications_of_app(app)] == [sooner, later]
    broadcast = app_client(app).post("/push/send/broadcast", {"title": "t", "body": "b"}).json()
    [shown] = broadcasts_of_app(app)
    assert str(shown["broadcast_id"]) == broadcast["broadcast_id"]
    assert shown["status"] == "fanning_out" and shown["recipients"] == 1
    drain()
    counts = broadcasts_of_app(app)[0]["counts"]
    assert sum(counts.values()) == 1 and counts["scheduled"] == counts["muted"] == 0


def test_the_consoles_broadcast_list_reads_every_broadcasts_counts_in_one_query(app, user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from push.selectors_scheduling import broadcast_counts, broadcasts_of_app

    client = app_client(app)
    for _ in range(3):
        client.post("/push/send/broadcast", {"title": "t", "body": "b"})
    drain()
    client.post("/push/send/broadcast", {"title": "t", "body": "b", "send_at": _at(600)})
    with CaptureQueriesContext(connection) as queries:
        shown = broadcasts_of_app(app)
    assert len(shown) == 4 and len(queries) == 2  # the broadcasts, then all their counts
    for summary in shown:
        broadcast = Broadcast.objects.get(pk=summary["broadcast_id"])
        assert summary["counts"] == broadcast_counts(broadcast)
    # Newest first: the scheduled one, not fanned out yet, has no notifications to count.
    assert [sum(s["counts"].values()) for s in shown] == [0, 1, 1, 1]


def test_giving_quota_back_touches_only_the_due_day_and_never_goes_below_zero(app, user):
    from push.services.scheduling import quota_give_back

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    _send(app, user)
    for _ in range(2):
        _send(app, user, send_at=tomorrow.isoformat())
    assert (_used(app, datetime.now(UTC)), _used(app, tomorrow)) == (1, 2)
    quota_give_back(app_id=app.pk, due=tomorrow, amount=5)
    assert (_used(app, datetime.now(UTC)), _used(app, tomorrow)) == (1, 0)
    quota_give_back(app_id=app.pk, due=None, amount=0)
    assert _used(app, datetime.now(UTC)) == 1
