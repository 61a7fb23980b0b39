"""Scheduled sends and broadcasts with real qcluster processes on PostgreSQL.

Two clusters racing over the same due schedules deliver each message once and none before its
time; a broadcast's worker SIGKILLed mid fan-out ends with one notification per recipient.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Enrollment, User
from keymaster.bulk import objects_insert
from push.delivery.fanout import broadcasts_resume
from push.delivery.queue import deliveries_enqueue_at
from push.models import Broadcast, Delivery, DeliveryStatus, Notification
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import app_client, fcm_device, make_push_app
from tests.faults.support import Qcluster, fault_figures, times_sent
from tests.workers import wait_until


def _users_with_devices(app, count: int, prefix: str) -> tuple[list[User], list[str]]:
    """`count` enrolled users of `app`, one FCM device each, written at once."""
    users = [
        User(id=uuid.uuid4(), email=f"{prefix}-{n}@example.com", password="!") for n in range(count)
    ]
    objects_insert(users)
    objects_insert([Enrollment(app=app, user=user) for user in users])
    tokens = [f"{prefix}-{n:06d}-" + "x" * 30 for n in range(count)]
    objects_insert(
        [fcm_device(app, user, token) for user, token in zip(users, tokens, strict=True)]
    )
    return users, tokens


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_clusters_racing_over_due_schedules_deliver_once_and_not_early(
    providers, fake_fcm, tmp_path
):
    app = make_push_app(daily_quota=10_000)
    users, tokens = _users_with_devices(app, 400, "race")
    with (
        Qcluster(tmp_path / "a.log", Q_WORKERS="2") as first,
        Qcluster(tmp_path / "b.log", Q_WORKERS="2") as second,
    ):
        send_at = timezone.now() + timedelta(seconds=4)
        drafts = [
            NotificationDraft(user_id=u.id, title="t", body="b", send_at=send_at) for u in users
        ]
        notifications_send(app=app, drafts=drafts)
        # Every chunk's task twice over: both clusters get the same due rows to fight over.
        deliveries_enqueue_at(list(Delivery.objects.values_list("id", flat=True)), send_at)
        delivered = Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
        wait_until(lambda: delivered.count() == len(tokens), 90, "every scheduled delivery")
        assert first.alive() and second.alive()
    sent = times_sent(fake_fcm.messages, tokens)
    earliest = min(at for token, at in fake_fcm.times() if token in set(tokens))
    fault_figures(
        "scheduled_race_two_clusters",
        notifications=len(tokens),
        delivered_twice=sum(1 for count in sent.values() if count > 1),
        first_sent_after_send_at_s=round(earliest - send_at.timestamp(), 3),
    )
    assert set(sent) == set(tokens) and set(sent.values()) == {1}
    assert earliest >= send_at.timestamp()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_broadcast_fan_out_sigkilled_mid_way_ends_with_one_notification_per_user(
    providers, tmp_path
):
    app = make_push_app(daily_quota=100_000)
    users, _ = _users_with_devices(app, 20_000, "wide")
    Enrollment.objects.filter(user__in=users[:100]).update(muted=True)
    answer = app_client(app).post("/push/send/broadcast", {"title": "t", "body": "b"})
    assert answer.status_code == 202 and answer.json()["recipients"] == 20_000
    broadcast_id = answer.json()["broadcast_id"]
    made = Notification.objects.filter(broadcast_id=broadcast_id)
    assert not made.exists()  # answered before any fan-out: that happens in tasks

    with Qcluster(tmp_path / "qcluster.log", PUSH_BROADCAST_CHUNK="500") as cluster:
        wait_until(lambda: made.exists(), 60, "the fan-out's first chunk")
        cluster.kill()
    at_kill = made.count()
    assert 0 < at_kill < 20_000, "the fan-out was not in the middle at the kill"
    assert Broadcast.objects.get(pk=broadcast_id).status == "fanning_out"

    # The sweeper finds the fan-out quiet and queues it again; a new cluster finishes it.
    assert broadcasts_resume(now=timezone.now() + timedelta(seconds=61)) == 1
    broadcast = Broadcast.objects.filter(pk=broadcast_id, status="done")
    with Qcluster(tmp_path / "again.log", PUSH_BROADCAST_CHUNK="500"):
        wait_until(broadcast.exists, 120, "the fan-out to finish")
    fault_figures("broadcast_fan_out_sigkilled", recipients=20_000, made_at_kill=at_kill)
    assert made.count() == 20_000
    assert made.values("user_id").distinct().count() == 20_000
    assert made.filter(status="muted").count() == 100
    assert not Delivery.objects.filter(notification__status="muted").exists()
    assert Delivery.objects.filter(notification__broadcast_id=broadcast_id).count() == 19_900
