"""GET /readyz: 200 only with the database up, a worker beating and deliveries not lagging."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone
from rest_framework.test import APIClient

from push.delivery.monitor import worker_beat
from push.models import Delivery
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import enroll, make_push_app, make_user, register
from tests.faults.support import Qcluster
from tests.workers import wait_until


def _ready() -> tuple[int, dict]:
    answer = APIClient().get("/readyz")
    return answer.status_code, answer.json()


@pytest.mark.django_db
def test_ready_with_a_recent_worker_and_no_lag():
    worker_beat("host:1")
    assert _ready() == (
        200,
        {"status": "ok", "checks": {"database": "ok", "workers": "ok", "delivery_lag": "ok"}},
    )


@pytest.mark.django_db
def test_not_ready_without_a_worker_seen_in_the_last_minute():
    worker_beat("host:1", now=timezone.now() - timedelta(seconds=61))
    status, body = _ready()
    assert status == 503
    assert body["checks"]["workers"] == "no qcluster worker seen in the last 60 s"
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_not_ready_when_the_oldest_due_delivery_is_too_old(settings):
    worker_beat("host:1")
    app = make_push_app()
    user = make_user()
    enroll(app, user)
    register(user, app)
    notifications_send(app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")])
    assert _ready()[0] == 200
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=301))
    status, body = _ready()
    assert status == 503
    assert body["checks"]["delivery_lag"].startswith("the oldest due delivery has waited 30")
    settings.READY_MAX_LAG_SECONDS = 600
    assert _ready()[0] == 200


@pytest.mark.django_db
def test_not_ready_when_the_database_does_not_answer(monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def broken(self, sql, params=None):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    status, body = _ready()
    assert status == 503
    assert body["checks"]["database"] == "unavailable"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_readyz_follows_the_qcluster_stopping_and_starting(providers, tmp_path, settings):
    settings.READY_WORKER_SECONDS = 4
    beat = {"WORKER_HEARTBEAT_SECONDS": "1"}
    assert _ready()[0] == 503  # no worker has ever run
    with Qcluster(tmp_path / "first.log", **beat) as cluster:
        wait_until(lambda: _ready()[0] == 200, 60, "readyz to see the worker")
        cluster.stop()
        wait_until(lambda: _ready()[0] == 503, 30, "readyz to see the worker gone")
        assert "no qcluster worker" in _ready()[1]["checks"]["workers"]
    with Qcluster(tmp_path / "second.log", **beat):
        wait_until(lambda: _ready()[0] == 200, 60, "readyz to see the worker again")
