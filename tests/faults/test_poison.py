"""A poison message fails alone after its attempts and never holds up the rest of its chunk."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from keymaster.crypto import lookup_hmac
from push.models import (
    Delivery,
    DeliveryStatus,
    Device,
    Notification,
    Receipt,
)
from push.services.devices import device_token_hmac
from push.services.notifications import NotificationDraft, notifications_send
from push.tasks import sweep
from tests.factories import enroll, make_push_app, make_user
from tests.faults.support import (
    Qcluster,
    attempt_rounds,
    fault_figures,
    fcm_devices,
    times_sent,
)

ATTEMPTS = 3


def _encrypt_with_dropped_key(table: str, column: str, key_column: str, key: object) -> None:
    """Store a value encrypted under a key no longer in TOKEN_ENCRYPTION_KEYS (raw SQL)."""
    stale = Fernet(Fernet.generate_key()).encrypt(b"written under a key since dropped").decode()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {key_column} = %s", [stale, key])


def _corrupt_subscription_device(app, user) -> Device:
    return Device.objects.create(
        app=app,
        user=user,
        platform="web",
        transport="webpush",
        token='{"endpoint": "https://push.example/abc", "keys": {"p256dh": ',  # cut short
        token_hmac=lookup_hmac("webpush:corrupt"),
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_poison_rows_fail_alone_after_their_attempts(
    providers, fake_fcm, fake_webhook, settings, tmp_path
):
    settings.PUSH_MAX_ATTEMPTS = ATTEMPTS  # the sweeper runs here, the worker in its process
    app = make_push_app(webhook_url=f"{fake_webhook.url}/a")
    other = make_push_app(webhook_url=f"{fake_webhook.url}/b")
    user, other_user = make_user(), make_user()
    enroll(app, user)
    enroll(other, other_user)
    good = fcm_devices(app, user, "poison-good", 40)
    other_good = fcm_devices(other, other_user, "poison-other", 10)
    unreadable = Device.objects.get(token_hmac=device_token_hmac("fcm", good.pop()))
    corrupt = _corrupt_subscription_device(app, user)
    notifications_send(app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")])
    [other_notification], _ = notifications_send(
        app=other, drafts=[NotificationDraft(user_id=other_user.id, title="t", body="b")]
    )
    # Then a key is dropped before its rows were re-encrypted: one device token, and the other
    # app's webhook secret (so its receipts cannot be signed) become unreadable.
    _encrypt_with_dropped_key("push_device", "token", "id", unreadable.id)
    _encrypt_with_dropped_key("push_pushconfig", "webhook_secret", "app_id", other.app_id)
    poison = Delivery.objects.filter(device__in=[unreadable, corrupt])
    # One chunk for both apps, as the sweeper queues retries: the receipts share one too.
    OrmQ.objects.all().delete()
    Delivery.objects.update(enqueued_at=None)
    assert sweep() == {"deliveries": 51, "receipts": 0, "broadcasts": 0}

    with Qcluster(tmp_path / "qcluster.log", PUSH_MAX_ATTEMPTS=str(ATTEMPTS)) as cluster:
        for attempt in attempt_rounds(poison, ATTEMPTS, 30, "attempt of the poison rows"):
            if attempt == 1:
                # The first attempt already sent everything else in the chunk, once.
                assert Delivery.objects.filter(status="delivered").count() == 49
                assert len(fake_webhook.received("/a")) == 39
        assert cluster.alive()

    delivered = Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
    assert set(delivered.values_list("attempts", flat=True)) == {1}  # never held up, never redone
    for delivery in poison:
        assert (delivery.status, delivery.error, delivery.attempts) == (
            "failed",
            "too_many_attempts",
            ATTEMPTS,
        )
    details = sorted(poison.values_list("error_detail", flat=True))
    assert details[0].startswith("ImproperlyConfigured: A stored secret cannot be decrypted")
    assert details[1].startswith("JSONDecodeError: ")
    sent = times_sent(fake_fcm.messages, good + other_good)
    assert set(sent.values()) == {1} and len(sent) == 49
    assert Notification.objects.get(pk=other_notification).status == "delivered"

    # Receipts: the healthy app's all arrive (for the failed deliveries too, once they ended);
    # the other app's, which cannot be signed, fail after their attempts.
    arrived = [r.headers["webhook-id"] for r in fake_webhook.received("/a")]
    assert len(arrived) == len(set(arrived)) == 41
    assert set(Receipt.objects.filter(app=app).values_list("webhook_id", flat=True)) == set(arrived)
    stuck = Receipt.objects.filter(app=other)
    assert stuck.count() == 10
    assert set(stuck.values_list("status", "attempts", "last_error")) == {
        ("failed", ATTEMPTS, "internal_error")
    }
    assert fake_webhook.received("/b") == []
    fault_figures(
        "poison_message",
        notifications=len(good) + len(other_good) + 2,
        lost=len(set(good + other_good) - set(sent)),
        delivered_twice=sum(1 for count in sent.values() if count > 1),
        in_flight_at_fault=0,
        receipts_lost=41 - len(arrived),
        poison_deliveries_failed_after_attempts=poison.count(),
        poison_receipts_failed_after_attempts=stuck.count(),
        others_held_up=delivered.exclude(attempts=1).count(),
        attempts=ATTEMPTS,
    )


@pytest.mark.django_db
def test_sweeper_gives_up_a_claim_that_expired_on_its_last_attempt(
    providers, fake_webhook, settings
):
    settings.PUSH_MAX_ATTEMPTS = ATTEMPTS
    app = make_push_app(webhook_url=f"{fake_webhook.url}/receipts")
    user = make_user()
    enroll(app, user)
    fcm_devices(app, user, "crashing", 2)
    [notification_id], _ = notifications_send(
        app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")]
    )
    # Each claim of these ran out with no outcome: the worker died on them every time.
    spent, retried = Delivery.objects.order_by("id")
    past = timezone.now() - timedelta(seconds=1)
    Delivery.objects.filter(pk=spent.pk).update(
        status="sending", attempts=ATTEMPTS, claimed_until=past
    )
    Delivery.objects.filter(pk=retried.pk).update(
        status="sending", attempts=ATTEMPTS - 1, claimed_until=past, enqueued_at=None
    )
    receipt = Receipt.objects.create(
        app=app, delivery=retried, webhook_id="msg_spent", payload="{}", attempts=ATTEMPTS
    )
    Receipt.objects.filter(pk=receipt.pk).update(status="sending", claimed_until=past)

    sweep()

    spent.refresh_from_db()
    retried.refresh_from_db()
    receipt.refresh_from_db()
    assert (spent.status, spent.error) == ("failed", "too_many_attempts")
    assert "no outcome in 3 attempts" in spent.error_detail
    assert spent.receipts.count() == 1  # the app hears of the failure
    assert (retried.status, retried.enqueued_at is not None) == ("queued", True)
    assert (receipt.status, receipt.claimed_until) == ("failed", None)
    assert "no answer recorded in 3 attempts" in receipt.last_error
    assert Notification.objects.get(pk=notification_id).status == "queued"  # one still to go
