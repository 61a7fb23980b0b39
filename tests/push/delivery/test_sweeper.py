"""The sweeper thread each worker process runs: a dead worker's claims come back on their own."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signals import post_spawn

from push.delivery.sweeper import sweeper_start
from push.models import Delivery, DeliveryStatus
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import enroll, fcm_token, make_push_app, make_user, register
from tests.workers import wait_until


def test_each_worker_process_starts_a_sweeper():
    receivers = [entry[1]() for entry in post_spawn.receivers]  # (key, weak reference, ...)
    assert sweeper_start in receivers


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_takes_back_a_dead_workers_claims_without_being_asked(settings):
    settings.PUSH_SWEEP_SECONDS = 0.1
    app = make_push_app()
    user = make_user()
    enroll(app, user)
    register(user, app, fcm_token("sweeper"))
    notifications_send(app=app, drafts=[NotificationDraft(user_id=user.pk, title="t", body="b")])
    OrmQ.objects.all().delete()  # its task went with the dead cluster
    # A worker claimed it and died: the lease it stopped renewing has run out.
    Delivery.objects.update(
        status=DeliveryStatus.SENDING, claimed_until=timezone.now() - timedelta(seconds=1)
    )
    stop = threading.Event()
    thread = sweeper_start(stop)
    try:
        wait_until(
            lambda: (
                Delivery.objects.filter(status=DeliveryStatus.QUEUED).exists()
                and OrmQ.objects.exists()
            ),
            30,
            "the sweeper to queue the delivery again",
        )
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
