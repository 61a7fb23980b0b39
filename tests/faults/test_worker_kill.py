"""A worker SIGKILLed mid-chunk loses no notification (real qcluster processes, PostgreSQL)."""

from __future__ import annotations

import time

import pytest

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
