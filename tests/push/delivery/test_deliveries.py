"""Delivery end to end: real transports into the local fakes, outcomes, receipts, retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from push.delivery import deliveries as delivery_service
from push.delivery import receipts as receipt_service
from push.models import Delivery, Device, Notification, PushConfig, Receipt
from push.services.redelivery import receipt_redeliver
from push.tasks import deliveries_send, sweep
from push.transports.base import Outcome
from tests.drain import drain
from tests.factories import (
    app_client,
    enable_push,
    enroll,
    fcm_token,
    make_app,
    make_user,
    register,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(providers, fake_webhook):
    app = make_app()[0]
    config = enable_push(app, webhook_url=f"{fake_webhook.url}/hooks/push-receipts")
    user = make_user()
    enroll(app, user)
    return app, config, user


def _send(app, user, **extra):
    body = {
        "user_id": str(user.id),
        "title": "Shift",
        "body": "Starts soon",
        "data": {"route": "/schedule"},
        **extra,
    }
    response = app_client(app).post("/push/send", body)
    assert response.status_code == 202, response.json()
    return response.json()["notification_id"]


def _advance(monkeypatch, seconds):
    later = timezone.now() + timedelta(seconds=seconds)
    monkeypatch.setattr(timezone, "now", lambda: later)
    return later


def test_web_push_is_delivered_decrypted_and_receipted(setup, fake_webpush, fake_webhook):
    app, config, user = setup
    device = register(user, app, fake_webpush.new_subscription(config.vapid_public_key), "web")
    notification_id = _send(app, user, collapse_key="shift", urgency="high", ttl=600)
    drain()
    [received] = fake_webpush.received()
    assert json.loads(received.payload) == {
        "title": "Shift",
        "body": "Starts soon",
        "data": {"route": "/schedule"},
        "notification_id": notification_id,
    }
    assert received.headers["urgency"] == "high" and int(received.headers["ttl"]) <= 600
    assert "topic" in received.headers
    assert Notification.objects.get(pk=notification_id).status == "delivered"
    [receipt] = fake_webhook.received("/hooks/push-receipts")
    body = json.loads(receipt.body)
    assert body == {
        "notification_id": notification_id,
        "user_id": str(user.id),
        "device_id": str(device.id),
        "app_id": str(app.app_id),
        "status": "delivered",
        "error": None,
        "timestamp": body["timestamp"],
    }
    secret = PushConfig.objects.get(app=app).webhook_secret
    expected = hmac.new(secret.encode(), receipt.body, hashlib.sha256).hexdigest()
    assert receipt.headers["x-keymaster-signature"] == f"sha256={expected}"
    Webhook(secret).verify(receipt.body, receipt.headers)  # raises if the signature is wrong


def test_fcm_is_delivered_with_the_v1_message(setup, fake_fcm):
    app, _, user = setup
    token = fcm_token("deliver")
    register(user, app, token, "android")
    notification_id = _send(app, user, priority="high", ttl=120)
    drain()
    [message] = [m for m in fake_fcm.messages if m.get("token") == token]
    assert message["notification"] == {"title": "Shift", "body": "Starts soon"}
    assert message["data"] == {"route": "/schedule", "notification_id": str(notification_id)}
    assert message["android"]["priority"] == "high"
    assert Notification.objects.get(pk=notification_id).status == "delivered"


def test_invalid_token_removes_the_device_and_says_so(setup, fake_webhook):
    app, _, user = setup
    device = register(user, app, "unregistered-" + "x" * 40, "ios")
    notification_id = _send(app, user)
    drain()
    assert not Device.objects.filter(pk=device.id).exists()
    delivery = Delivery.objects.get(notification_id=notification_id)
    assert delivery.status == "invalid_token"
    assert Notification.objects.get(pk=notification_id).status == "failed"
    [receipt] = fake_webhook.received()
    assert json.loads(receipt.body)["status"] == "invalid_token"


def test_expired_web_push_subscription_removes_the_device(setup, fake_webpush):
    app, config, user = setup
    subscription = fake_webpush.new_subscription()
    device = register(user, app, subscription, "web")
    fake_webpush.expire(subscription)
    _send(app, user)
    drain()
    assert not Device.objects.filter(pk=device.id).exists()


def test_sender_mismatch_fails_keeps_the_device_and_shows_on_the_config(setup, fake_fcm):
    app, _, user = setup
    token = fcm_token("mismatch")
    device = register(user, app, token)
    fake_fcm.script(token, ["SENDER_ID_MISMATCH"])
    notification_id = _send(app, user)
    drain()
    assert Delivery.objects.get(notification_id=notification_id).status == "failed"
    assert Device.objects.filter(pk=device.id).exists()
    assert "SENDER_ID_MISMATCH" in PushConfig.objects.get(app=app).last_error


def test_503_with_retry_after_30_is_not_retried_sooner(setup, fake_fcm, monkeypatch):
    app, _, user = setup
    token = fcm_token("busy")
    register(user, app, token)
    fake_fcm.script(token, ["UNAVAILABLE:retry_after=30", "OK"])
    notification_id = _send(app, user)
    drain()
    delivery = Delivery.objects.get(notification_id=notification_id)
    assert delivery.status == "queued" and delivery.attempts == 1
    assert delivery.next_attempt_at >= timezone.now() + timedelta(seconds=29)
    _advance(monkeypatch, 29)
    assert sweep()["deliveries"] == 0
    assert deliveries_send([delivery.id]) == {}  # a stray task cannot send it early either
    _advance(monkeypatch, 31 + delivery_service.BACKOFF_BASE)
    assert sweep()["deliveries"] == 1
    drain()
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 2


def test_retries_stop_when_the_ttl_runs_out(setup, fake_fcm):
    app, _, user = setup
    token = fcm_token("ttl")
    register(user, app, token)
    fake_fcm.script(token, ["UNAVAILABLE:retry_after=120"])
    notification_id = _send(app, user, ttl=60)
    drain()
    delivery = Delivery.objects.get(notification_id=notification_id)
    assert (delivery.status, delivery.error) == ("failed", "expired")


def test_running_a_task_twice_sends_once(setup, fake_fcm):
    app, _, user = setup
    token = fcm_token("twice")
    register(user, app, token)
    notification_id = _send(app, user)
    ids = [Delivery.objects.get(notification_id=notification_id).id]
    deliveries_send(ids)
    deliveries_send(ids)
    assert len([m for m in fake_fcm.messages if m.get("token") == token]) == 1


def test_a_short_chunk_takes_other_due_deliveries_along(setup, fake_fcm, settings):
    app, _, user = setup
    register(user, app)
    settings.PUSH_DELIVERY_CHUNK = 3
    ids = [Delivery.objects.get(notification_id=_send(app, user)).id for _ in range(5)]
    later = timezone.now() + timedelta(minutes=5)
    Delivery.objects.filter(id=ids[1]).update(next_attempt_at=later)  # a retry, not due yet
    assert deliveries_send([ids[4]]) == {"delivered": 3, "retry": 0}
    # The task's own row first, then the oldest due ones; the retry waits for its time.
    sent = set(Delivery.objects.filter(status="delivered").values_list("id", flat=True))
    assert sent == {ids[4], ids[0], ids[2]}
    assert deliveries_send([ids[0], ids[2]]) == {"delivered": 1, "retry": 0}  # ids[3]
    assert Delivery.objects.get(id=ids[1]).status == "queued"
    assert deliveries_send([ids[3]]) == {}  # its task comes late and finds nothing to do


@pytest.mark.parametrize("retry", [False, True])
def test_a_chunk_costs_the_same_statements_whatever_its_size(setup, fake_fcm, retry, settings):
    # Loading fewer fields must never turn into a query per delivery (or per receipt).
    app, _, user = setup
    # Outcomes are recorded in groups as they arrive: here all in one group, whatever the
    # machine's speed, so the count is that of one group (the next test splits them).
    settings.PUSH_RECORD_MS = 60_000
    settings.PUSH_RECORD_EVERY = 1_000

    def statements(devices: int) -> int:
        for n in range(devices):
            token = fcm_token(f"size-{devices}-{n}")
            register(user, app, token)
            if retry:
                fake_fcm.script(token, ["UNAVAILABLE:retry_after=30"])
        notification_id = _send(app, user)
        ids = list(
            Delivery.objects.filter(notification_id=notification_id).values_list("id", flat=True)
        )
        with CaptureQueriesContext(connection) as captured:
            deliveries_send(ids)
        Device.objects.all().delete()
        return len(captured)

    # A retry keeps its own jittered time: one UPDATE each, and nothing else per delivery.
    assert statements(7) - statements(2) == (5 if retry else 0)


def test_outcomes_are_recorded_as_they_arrive_not_once_per_chunk(setup, fake_webpush):
    # A slow push service answer must not hold back the record of the answers before it: a
    # worker killed meanwhile would send those again.
    app, config, user = setup
    fast = fake_webpush.new_subscription(config.vapid_public_key)
    slow = fake_webpush.new_subscription(config.vapid_public_key)
    register(user, app, fast, "web")
    register(user, app, slow, "web")
    fake_webpush.script(slow, [{"status": 201, "delay_ms": 1500}])
    notification_id = _send(app, user)
    ids = list(
        Delivery.objects.filter(notification_id=notification_id).values_list("id", flat=True)
    )

    with CaptureQueriesContext(connection) as captured:
        assert deliveries_send(ids) == {"delivered": 2, "retry": 0}

    recorded = 'UPDATE "push_delivery" SET "status" = \'delivered\''
    records = [q["sql"] for q in captured if q["sql"].startswith(recorded)]
    assert len(records) == 2  # one group when the fast answer came, one for the slow one
    # The first group left the notification open (its other delivery was still out); the
    # second, which recorded its last delivery, ended it.
    assert Notification.objects.get(pk=notification_id).status == "delivered"


def test_a_dead_workers_claims_are_taken_back(setup, fake_fcm, monkeypatch, settings):
    app, _, user = setup
    register(user, app)
    notification_id = _send(app, user)
    delivery = Delivery.objects.get(notification_id=notification_id)
    # A worker claimed the chunk and was killed before sending.
    assert delivery_service.deliveries_claim([delivery.id]) == [delivery.id]
    assert sweep()["deliveries"] == 0  # the lease still runs
    _advance(monkeypatch, settings.PUSH_CLAIM_SECONDS + 1)
    assert sweep()["deliveries"] == 1
    drain()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_user_without_devices_is_not_queued(setup):
    app, _, user = setup
    notification_id = _send(app, user)
    assert Notification.objects.get(pk=notification_id).status == "no_devices"
    assert drain() == 0


# --- receipts -------------------------------------------------------------------------------


def test_receipt_retried_with_the_same_webhook_id(setup, fake_webhook, monkeypatch):
    app, _, user = setup
    register(user, app)
    fake_webhook.script([503])
    _send(app, user)
    drain()
    receipt = Receipt.objects.get()
    assert receipt.status == "pending" and receipt.last_status_code == 503
    _advance(monkeypatch, receipt_service.BACKOFF_BASE + 1)
    sweep()
    drain()
    receipt.refresh_from_db()
    assert receipt.status == "delivered"
    ids = {d.headers["webhook-id"] for d in fake_webhook.received()}
    assert ids == {receipt.webhook_id} and len(fake_webhook.received()) == 2
    assert receipt.attempt_log.count() == 2


def test_redirect_is_not_followed_and_410_turns_the_webhook_off(setup, fake_webhook):
    app, _, user = setup
    register(user, app)
    fake_webhook.set_mode("gone")
    _send(app, user)
    drain()
    config = PushConfig.objects.get(app=app)
    assert config.webhook_disabled_at is not None and "410" in config.webhook_disabled_reason
    assert Receipt.objects.get().status == "failed"
    _send(app, user)
    drain()
    assert Receipt.objects.count() == 1  # no receipts while the webhook is off


def test_redirects_are_retried_not_followed(setup, fake_webhook):
    app, _, user = setup
    register(user, app)
    fake_webhook.set_mode("redirect")
    _send(app, user)
    drain()
    receipt = Receipt.objects.get()
    assert receipt.status == "pending" and receipt.last_status_code == 302
    assert len(fake_webhook.received()) == 1


def test_redeliver_sends_the_same_receipt_again(setup, fake_webhook):
    app, _, user = setup
    register(user, app)
    _send(app, user)
    drain()
    receipt = Receipt.objects.get()
    receipt_redeliver(receipt=receipt, actor=None)
    drain()
    bodies = [d.body for d in fake_webhook.received()]
    assert len(bodies) == 2 and bodies[0] == bodies[1]


def test_webhook_on_an_internal_address_is_refused_without_a_connection(
    setup, fake_webhook, settings
):
    app, _, user = setup
    register(user, app)
    settings.OUTBOUND_ALLOWED_HOSTS = ""  # the fake's 127.0.0.1 is internal now
    from push.delivery.runtime import runtime_reset

    runtime_reset()
    _send(app, user)
    drain()
    assert Receipt.objects.get().status == "failed"
    assert fake_webhook.received() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_tasks_ending_a_notifications_last_deliveries_at_once_roll_it_up(setup, fake_fcm):
    # Each task records one of the two deliveries; neither has committed when the other looks
    # at its sibling. Found by the benchmark's faults run: the notification stayed queued.
    app, _, user = setup
    register(user, app)
    register(user, app)
    notification_id = _send(app, user)
    ids = sorted(
        Delivery.objects.filter(notification_id=notification_id).values_list("id", flat=True)
    )
    assert delivery_service.deliveries_claim(ids) == ids
    first, second = (
        list(Delivery.objects.filter(id=i).select_related("notification")) for i in ids
    )
    first_recorded, first_may_commit = threading.Event(), threading.Event()
    second_done, second_pid = threading.Event(), []

    def record(deliveries):
        delivery_service.deliveries_record(deliveries, {deliveries[0].id: Outcome.delivered()})

    def first_task():
        try:
            with transaction.atomic():
                record(first)
                first_recorded.set()
                first_may_commit.wait(30)
        finally:
            connection.close()

    def second_task():
        try:
            assert first_recorded.wait(30)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                second_pid.append(cursor.fetchone()[0])
            with transaction.atomic():
                record(second)
            second_done.set()
        finally:
            connection.close()

    threads = [threading.Thread(target=first_task), threading.Thread(target=second_task)]
    for thread in threads:
        thread.start()
    # The first task holds its transaction open until the second has looked at the
    # notification too: until it has finished, or waits for the first's lock.
    deadline = time.monotonic() + 30
    while not second_done.is_set() and time.monotonic() < deadline:
        if second_pid and _waits_for_a_lock(second_pid[0]):
            break
        time.sleep(0.02)
    first_may_commit.set()
    for thread in threads:
        thread.join(30)

    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {
        "delivered"
    }
    assert Notification.objects.get(id=notification_id).status == "delivered"


def _waits_for_a_lock(pid):
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"
