"""The webhook receiver down for a while, then back: every receipt arrives, under one id."""

from __future__ import annotations

from collections import defaultdict

import pytest

from fakes.webhook import WebhookFake
from push.models import Delivery, Receipt, ReceiptAttempt
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import enroll, make_push_app, make_user
from tests.faults.support import (
    Qcluster,
    fault_figures,
    fcm_devices,
    next_round,
    receipts_lost,
    times_sent,
    worker_idle,
)
from tests.workers import wait_until

DEVICES = 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_receipts_wait_out_a_webhook_outage_and_keep_their_id(providers, fake_fcm, tmp_path):
    receiver = WebhookFake()
    receiver.start()
    port = int(receiver.url.rsplit(":", 1)[1])
    receiver.set_mode("down")  # first it answers 503 ...
    app = make_push_app(webhook_url=f"{receiver.url}/receipts")
    user = make_user()
    enroll(app, user)
    tokens = fcm_devices(app, user, "hook-down", DEVICES)
    notifications_send(app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")])
    receipts = Receipt.objects.all()
    received = []

    with Qcluster(tmp_path / "qcluster.log") as cluster:
        wait_until(
            lambda: worker_idle() and receipts.filter(attempts=1).count() == DEVICES,
            30,
            "the receipts' first attempt",
        )
        assert set(receipts.values_list("status", "last_status_code")) == {("pending", 503)}

        receiver.stop()  # ... then it is gone: its port refuses connections ...
        received += receiver.received()
        next_round()
        wait_until(
            lambda: worker_idle() and receipts.filter(attempts=2).count() == DEVICES,
            30,
            "the receipts' second attempt",
        )
        assert set(receipts.values_list("status", "last_error")) == {
            ("pending", "connection_error")
        }

        receiver = WebhookFake(port=port)  # ... and back, on the same address.
        receiver.start()
        try:
            next_round()
            wait_until(
                lambda: worker_idle() and receipts.filter(status="delivered").count() == DEVICES,
                30,
                "the receipts to arrive once the webhook is back",
            )
        finally:
            received += receiver.received()
            receiver.stop()
        assert cluster.alive()

    # Every retry of a receipt carried its one webhook-id and the same signed body.
    ids_by_body: dict[bytes, set[str]] = defaultdict(set)
    for post in received:
        ids_by_body[post.body].add(post.headers["webhook-id"])
    assert len(ids_by_body) == DEVICES
    assert all(len(ids) == 1 for ids in ids_by_body.values())
    by_id = {post.headers["webhook-id"] for post in received}
    assert by_id == set(receipts.values_list("webhook_id", flat=True))
    assert sorted(p.status for p in received).count(503) == DEVICES  # one 503 each, then 200
    assert sorted(p.status for p in received).count(200) == DEVICES
    assert ReceiptAttempt.objects.count() == 3 * DEVICES

    sent = times_sent(fake_fcm.messages, tokens)
    lost_receipts = receipts_lost(received)
    fault_figures(
        "webhook_down_then_back",
        notifications=DEVICES,
        lost=len(set(tokens) - set(sent)),
        delivered_twice=sum(1 for count in sent.values() if count > 1),
        in_flight_at_fault=0,
        receipts_lost=lost_receipts,
        receipt_attempts_each=3,
        webhook_ids_changed_on_retry=sum(len(ids) - 1 for ids in ids_by_body.values()),
    )
    assert Delivery.objects.filter(status="delivered").count() == DEVICES
    assert lost_receipts == 0
