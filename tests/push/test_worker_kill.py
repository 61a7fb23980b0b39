"""A worker SIGKILLed mid-chunk loses no notification (real qcluster processes, PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from keymaster.crypto import lookup_hmac
from push.models import Delivery, DeliveryStatus, Device, Notification
from push.services.notifications import NotificationDraft, notifications_send
from push.tasks import sweep
from tests.drain import drain
from tests.factories import enroll, make_push_app, make_user

ROOT = Path(__file__).resolve().parents[2]


def _worker_env(overrides: dict[str, str]) -> dict[str, str]:
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DEBUG": "1", "Q_WORKERS": "1", **overrides}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sigkilled_worker_mid_chunk_loses_nothing(providers, fake_fcm, monkeypatch):
    app = make_push_app()
    user = make_user()
    enroll(app, user)
    tokens = [f"kill-test-token-{n:04d}-" + "x" * 30 for n in range(1000)]
    Device.objects.bulk_create(
        Device(
            app=app,
            user=user,
            platform="android",
            transport="fcm",
            token=t,
            token_hmac=lookup_hmac("fcm:" + t),
        )
        for t in tokens
    )
    fake_fcm.set_faults(latency_ms=400)
    [notification_id], _ = notifications_send(
        app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")]
    )
    env = _worker_env(
        {
            "FCM_CREDENTIALS_FILE": settings.FCM_CREDENTIALS_FILE,
            "FCM_API_URL": settings.FCM_API_URL,
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "PUSH_CLAIM_SECONDS": "3",
        }
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=open(os.environ.get("KILL_TEST_LOG", os.devnull), "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        delivered = Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
        _wait(lambda: delivered.exists(), 30, "the worker to deliver something")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    in_flight = Delivery.objects.filter(status=DeliveryStatus.SENDING).count()
    unfinished = Delivery.objects.exclude(status=DeliveryStatus.DELIVERED).count()
    assert unfinished > 0, "the worker finished before it was killed: the test proved nothing"

    # Workers run again: once the dead worker's lease runs out, the sweeper takes its claims back.
    fake_fcm.set_faults(latency_ms=0)
    time.sleep(3.5)
    sweep()
    drain()

    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 1000
    assert Notification.objects.get(pk=notification_id).status == "delivered"
    sent = Counter(
        m["token"] for m in fake_fcm.messages if m.get("token", "").startswith("kill-test")
    )
    assert set(sent) == set(tokens)  # none lost
    twice = sum(1 for count in sent.values() if count > 1)
    assert twice <= in_flight  # only what was in flight at the kill went out twice
