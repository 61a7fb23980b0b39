"""Data migrations: what they repair, run through Django's migration executor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from push.models import Delivery, Notification
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import enable_push, enroll, make_app, make_user, register

BEFORE = ("push", "0006_claimed_index_by_lease")
ROLL_UP = ("push", "0007_roll_up_stuck_notifications")


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


@pytest.fixture(autouse=True)
def _back_to_the_latest_migrations():
    # Migrating back to BEFORE also unapplies every later migration: put them all back, or the
    # tests after this one run against a schema without them.
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_notifications_left_queued_after_their_deliveries_ended_are_rolled_up():
    app = make_app()[0]
    enable_push(app)
    user = make_user()
    enroll(app, user)
    register(user, app)
    register(user, app)
    ids, _ = notifications_send(
        app=app, drafts=[NotificationDraft(user_id=user.id, title="t", body="b")] * 3
    )
    ended = timezone.now() - timedelta(hours=1)
    # What the race left: every delivery ended, the notification still queued.
    left = [("delivered", "failed"), ("failed", "invalid_token"), ("delivered", "sending")]
    for notification_id, statuses in zip(ids, left, strict=True):
        deliveries = Delivery.objects.filter(notification_id=notification_id).order_by("id")
        for delivery, status in zip(deliveries, statuses, strict=True):
            Delivery.objects.filter(id=delivery.id).update(status=status, updated_at=ended)

    assert set(Notification.objects.filter(id__in=ids).values_list("status", flat=True)) == {
        "queued"
    }

    _migrate(BEFORE)
    _migrate(ROLL_UP)

    rolled = {n.id: n for n in Notification.objects.filter(id__in=ids)}
    assert [rolled[i].status for i in ids] == ["delivered", "failed", "queued"]
    assert [rolled[i].completed_at for i in ids] == [ended, ended, None]
