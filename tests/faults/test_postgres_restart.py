"""PostgreSQL restarted while a real worker delivers: nothing lost, the worker carries on."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from push.models import Delivery, DeliveryStatus, Receipt
from push.services.notifications import NotificationDraft, notifications_send
from push.tasks import sweep
from tests.factories import enroll, make_push_app, make_user
from tests.faults.support import (
    Qcluster,
    fault_figures,
    fcm_devices,
    receipts_lost,
    times_sent,
    worker_idle,
)
from tests.workers import wait_until

DEVICES = 2000


def _restart_postgres() -> None:
    """Restart the local PostgreSQL server (fast shutdown: every session is cut)."""
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        message = "restarting PostgreSQL needs pg_ctlcluster and root (as in CI)"
        if os.environ.get("CI_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
    subprocess.run([*command, "-m", "fast"], check=True, capture_output=True, timeout=60)
    db = settings.DATABASES["default"]
    ready = ["pg_isready", "-q", "-h", db["HOST"], "-p", str(db["PORT"])]
    wait_until(lambda: subprocess.run(ready).returncode == 0, 30, "PostgreSQL to be back")
    connection.close()  # this test's own session was cut too


def _all_done() -> bool:
    # The sweeper's schedule runs every minute; here it runs every second of the wait.
    sweep()
    time.sleep(1)
    return (
        worker_idle()
        and Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == DEVICES
        and Receipt.objects.filter(status="delivered").count() == DEVICES
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_restart_during_delivery_loses_nothing(
    providers, fake_fcm, fake_webhook, tmp_path
):
    app = make_push_app(webhook_url=f"{fake_webhook.url}/pg-restart")
    user = make_user()
    enroll(app, user)
    tokens = fcm_devices(app, user, "pg-restart", DEVICES)
    # Slow enough that the delivery outlasts the restart (about 2 s) by far, however fast
    # the workers are: the fault must land mid-delivery.
    fake_fcm.set_faults(latency_ms=1000)
    notifications_send(app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")])
    delivered = Delivery.objects.filter(status=DeliveryStatus.DELIVERED)
    sending = Delivery.objects.filter(status=DeliveryStatus.SENDING)

    # A lease long enough for a chunk on a busy machine: the worker lives, so no claim of it
    # needs taking back; a shorter one would only add the sweeper's duplicates to the fault's.
    with Qcluster(tmp_path / "qcluster.log", PUSH_CLAIM_SECONDS="10") as cluster:
        wait_until(
            lambda: delivered.count() >= 250 and sending.exists(),
            60,
            "the worker to be delivering mid-chunk",
        )
        in_flight = sending.count()
        _restart_postgres()
        assert delivered.count() < DEVICES, "delivery finished before the restart"
        wait_until(_all_done, 240, "every delivery and receipt after the restart")
        assert cluster.alive()
        log = cluster.log_text()

    sent = times_sent(fake_fcm.messages, tokens)
    twice = sum(1 for count in sent.values() if count > 1)
    claimed_again = Delivery.objects.filter(attempts__gt=1).count()
    lost_receipts = receipts_lost(fake_webhook.received("/pg-restart"))
    fault_figures(
        "postgres_restarted_during_delivery",
        notifications=DEVICES,
        lost=len(set(tokens) - set(sent)),
        delivered_twice=twice,
        in_flight_at_fault=in_flight,
        claimed_again_after_fault=claimed_again,
        receipts_lost=lost_receipts,
        worker_processes_restarted_by_guard=log.count("reincarnated"),
        tasks_that_waited_for_the_database=log.count("database unavailable"),
    )
    assert set(sent) == set(tokens)  # none lost
    assert twice <= claimed_again  # a message goes out twice only if its claim was lost
    assert lost_receipts == 0
