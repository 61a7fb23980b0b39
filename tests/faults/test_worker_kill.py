"""A worker SIGKILLed mid-chunk loses no notification (real qcluster processes, PostgreSQL).

The second test is the figure SECURITY.md quotes: 2,000 Web Push messages, the qcluster
SIGKILLed mid-run and started again at once (a supervisor would), as in production settings:
how long until a delivery is recorded again, and how many messages went out twice.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from push.models import Delivery, DeliveryStatus, Notification
from push.services.notifications import NotificationDraft, notifications_send
from push.tasks import sweep
from tests.drain import drain
from tests.factories import enroll, make_push_app, make_user
from tests.faults.support import (
    Qcluster,
    fault_figures,
    fcm_devices,
    receipts_lost,
    times_sent,
    webpush_devices,
)
from tests.workers import wait_until


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sigkilled_worker_mid_chunk_loses_nothing(providers, fake_fcm, fake_webhook, tmp_path):
    app = make_push_app(webhook_url=f"{fake_webhook.url}/receipts")
    user = make_user()
    enroll(app, user)
    tokens = fcm_devices(app, user, "kill-test", 1000)
    fake_fcm.set_faults(latency_ms=400)
    [notification_id], _ = notifications_send(
        app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")]
    )
    with Qcluster(tmp_path / "qcluster.log", PUSH_CLAIM_SECONDS="3") as cluster:
        delivered = Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
        sending = Delivery.objects.filter(status=DeliveryStatus.SENDING)
        wait_until(
            lambda: delivered.exists() and sending.exists(),
            30,
            "the worker to have delivered a chunk and be in the middle of the next",
        )
        cluster.kill()
    in_flight = Delivery.objects.filter(status=DeliveryStatus.SENDING).count()
    assert in_flight > 0, "nothing was in flight at the kill: the test proved nothing"

    # Workers run again: once the dead worker's lease runs out, the sweeper takes its claims back.
    fake_fcm.set_faults(latency_ms=0)
    time.sleep(3.5)
    sweep()
    drain()

    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 1000
    assert Notification.objects.get(pk=notification_id).status == "delivered"
    sent = times_sent(fake_fcm.messages, tokens)
    twice = sum(1 for count in sent.values() if count > 1)
    lost_receipts = receipts_lost(fake_webhook.received())
    fault_figures(
        "worker_sigkilled_mid_chunk",
        notifications=len(tokens),
        lost=len(set(tokens) - set(sent)),
        delivered_twice=twice,
        in_flight_at_fault=in_flight,
        receipts_lost=lost_receipts,
    )
    assert set(sent) == set(tokens)  # none lost
    assert twice <= in_flight  # only what was in flight at the kill went out twice
    assert lost_receipts == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_after_a_sigkill_work_resumes_and_repeats_only_what_awaited_its_record(
    providers, fake_webpush, fake_webhook, tmp_path
):
    app = make_push_app(webhook_url=f"{fake_webhook.url}/receipts")
    user = make_user()
    enroll(app, user)
    subscriptions = webpush_devices(app, user, fake_webpush, 2000)
    fake_webpush.set_faults(latency_ms=200)  # a push service's answer takes a while
    [notification_id], _ = notifications_send(
        app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")]
    )
    delivered = Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
    with Qcluster(tmp_path / "qcluster.log") as cluster:
        wait_until(
            lambda: delivered.count() >= 300 and Delivery.objects.filter(status="sending").exists(),
            120,
            "the worker to be in the middle of the run",
        )
        killed_at = timezone.now()
        cluster.kill()
    in_flight = Delivery.objects.filter(status=DeliveryStatus.SENDING).count()
    recorded_before = delivered.count()
    assert in_flight > 0 and recorded_before < 2000, "the kill missed the run: it proved nothing"

    # A supervisor starts the cluster again at once; nobody runs the sweeper by hand.
    with Qcluster(tmp_path / "qcluster-again.log"):
        wait_until(lambda: delivered.count() == 2000, 180, "every delivery to be recorded")
        wait_until(lambda: receipts_lost(fake_webhook.received()) == 0, 60, "every receipt")
    resumed_at = delivered.filter(updated_at__gt=killed_at).aggregate(t=Min("updated_at"))["t"]
    recovery = (resumed_at - killed_at).total_seconds()

    assert Notification.objects.get(pk=notification_id).status == "delivered"
    sent = Counter(sub for sub, _ in fake_webpush.times() if sub in set(subscriptions))
    twice = sum(count - 1 for count in sent.values())
    # One worker (Q_WORKERS=1) ran one task: at most a window of its sends was in flight or
    # awaiting its record at the kill, and only those can go out again.
    bound = settings.PUSH_RECORD_WINDOW
    fault_figures(
        "worker_sigkilled_and_restarted_webpush",
        notifications=len(subscriptions),
        lost=len(set(subscriptions) - set(sent)),
        sent_twice=twice,
        sent_twice_bound=bound,
        claimed_at_kill=in_flight,
        recorded_before_kill=recorded_before,
        seconds_from_kill_to_first_new_delivery=round(recovery, 1),
        lease_seconds=settings.PUSH_CLAIM_SECONDS,
        sweep_seconds=settings.PUSH_SWEEP_SECONDS,
    )
    assert set(sent) == set(subscriptions)  # none lost
    assert twice <= bound
