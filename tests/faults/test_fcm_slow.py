"""FCM answering slower than PUSH_SEND_TIMEOUT: timeouts are retried, and nothing leaks."""

from __future__ import annotations

import pytest

from push.models import Delivery
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import enroll, make_push_app, make_user
from tests.faults.support import (
    Qcluster,
    attempt_rounds,
    fault_figures,
    fcm_devices,
    next_round,
    times_sent,
    worker_idle,
)
from tests.workers import wait_until

DEVICES = 100
SLOW_ROUNDS = 4
CHUNK = 25


def _resources(process) -> dict[str, int]:
    connections = process.net_connections("tcp")
    return {
        "threads": process.num_threads(),
        "fds": process.num_fds(),
        "tcp": len(connections),
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fcm_timeouts_are_retried_without_leaking(providers, fake_fcm, settings, tmp_path):
    settings.PUSH_DELIVERY_CHUNK = CHUNK  # several chunks a round (the sweeper runs here)
    app = make_push_app()
    user = make_user()
    enroll(app, user)
    tokens = fcm_devices(app, user, "slow-fcm", DEVICES)
    fake_fcm.set_faults(latency_ms=1500)
    notifications_send(app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")])
    deliveries = Delivery.objects.all()
    used = []

    env = {"PUSH_SEND_TIMEOUT": "0.3", "PUSH_DELIVERY_CHUNK": str(CHUNK)}
    with Qcluster(tmp_path / "qcluster.log", **env) as cluster:
        for _ in attempt_rounds(deliveries, SLOW_ROUNDS, 60, "round of timeouts"):
            # Every one timed out and waits for its retry: none failed, none lost.
            assert set(deliveries.values_list("status", "error")) == {("queued", "timeout")}
            used.append(_resources(cluster.worker()))
        worker = cluster.worker()

        fake_fcm.set_faults(latency_ms=0)
        next_round()
        wait_until(
            lambda: worker_idle() and deliveries.filter(status="delivered").count() == DEVICES,
            60,
            "the deliveries once FCM answers in time",
        )
        assert cluster.worker().pid == worker.pid  # the same worker all along
        used.append(_resources(worker))

    # The first round starts the pools; later rounds of timeouts must not add to them, and
    # once FCM answers, the keep-alive connections are at most one per concurrent request
    # (plus the database connection of the worker's sweeper thread, opened at its first sweep).
    first, *timeouts, answered = used
    for later in timeouts:
        assert later["threads"] <= first["threads"], used
        assert later["fds"] <= first["fds"] + 2, used
        assert later["tcp"] <= first["tcp"] + 2, used
    assert answered["threads"] <= first["threads"], used
    assert answered["tcp"] - first["tcp"] <= CHUNK + 1, used
    sent = times_sent(fake_fcm.messages, tokens)
    fault_figures(
        "fcm_slower_than_timeout",
        notifications=DEVICES,
        lost=len(set(tokens) - set(sent)),
        delivered_twice=sum(1 for count in sent.values() if count > 1),
        in_flight_at_fault=DEVICES,
        receipts_lost=0,
        timed_out_attempts=DEVICES * SLOW_ROUNDS,
        worker_threads_by_round=[u["threads"] for u in used],
        worker_fds_by_round=[u["fds"] for u in used],
        worker_tcp_by_round=[u["tcp"] for u in used],
    )
    assert set(sent) == set(tokens)
