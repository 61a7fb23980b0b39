"""The set-based fan-out (one INSERT … SELECT per chunk) writes what the ORM fan-out writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from accounts.models import Enrollment
from push.delivery.fanout import broadcast_fan_out
from push.models import Broadcast, Delivery, Notification
from tests.factories import app_client, enroll, make_push_app, make_user, register


def _broadcast(app, **fields) -> str:
    answer = app_client(app).post(
        "/push/send/broadcast",
        {"title": "Gym", "body": "closes early", "data": {"k": "v"}, **fields},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    return answer.json()["broadcast_id"]


def _when(value: Any, notification: Notification) -> Any:
    """A time as what it is relative to its notification (two fan-outs run at two moments)."""
    if value is None:
        return None
    if value == notification.send_at:
        return "send_at"
    if value == notification.created_at:
        return "made"
    return "other"


def _fields(obj: Any, notification: Notification, skip: set[str]) -> tuple:
    values = []
    for field in type(obj)._meta.concrete_fields:
        if field.primary_key or field.attname in skip:
            continue
        value = getattr(obj, field.attname)
        if isinstance(value, datetime):
            value = _when(value, notification)
        values.append((field.attname, repr(value)))
    return tuple(values)


def _written(broadcast_id: str) -> dict[str, Any]:
    """Every row the fan-out wrote for the broadcast, without ids and moments."""
    notifications = {n.pk: n for n in Notification.objects.filter(broadcast_id=broadcast_id)}
    deliveries = list(Delivery.objects.filter(notification_id__in=notifications))
    locks, queued = set(), []
    for row in OrmQ.objects.all():
        task = row.task
        if task["func"] != "push.tasks.deliveries_send":
            continue
        ids = [d for d in task["args"][0] if d in {x.pk for x in deliveries}]
        if ids:
            queued += ids
            one = next(d for d in deliveries if d.pk == ids[0])
            due = notifications[one.notification_id].send_at
            locks.add("send_at" if row.lock == due else row.lock <= timezone.now())
    return {
        "notifications": sorted(
            _fields(n, n, {"broadcast_id"}) + (("user", str(n.user_id)),)
            for n in notifications.values()
        ),
        "deliveries": sorted(
            _fields(d, notifications[d.notification_id], {"notification_id"})
            + (("user", str(notifications[d.notification_id].user_id)),)
            for d in deliveries
        ),
        "queued_once": sorted(queued) == sorted(d.pk for d in deliveries),
        "locks": locks,
    }


@pytest.mark.postgres
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"send_at": "in an hour", "priority": "high", "ttl": 600, "collapse_key": "gym"},
        {"topic": "news", "platforms": ["android"]},
    ],
    ids=["now", "scheduled", "topic-and-platform"],
)
def test_set_based_fan_out_writes_what_the_orm_fan_out_writes(db, settings, options):
    settings.PUSH_BROADCAST_CHUNK = 2  # several chunks: the cursor carries over
    app = make_push_app(daily_quota=1000)
    users = [make_user() for _ in range(7)]
    enroll(app, *users)
    for user in users[:5]:
        register(user, app)
    register(users[1], app, platform="ios")  # two devices, two platforms
    register(users[2], app, platform="ios")
    Enrollment.objects.filter(app=app, user=users[3]).update(muted=True)
    # users[5] and users[6] have no device: not reached.
    if options.get("topic"):
        members = [str(u.id) for u in users[1:4]]
        body = {"add": members}
        answer = app_client(app).post("/push/topics/news/members", body, format="json")
        assert answer.status_code == 200
    if options.get("send_at"):
        options = {**options, "send_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    set_based, by_orm = _broadcast(app, **options), _broadcast(app, **options)
    OrmQ.objects.all().delete()  # the fan-out tasks: run here instead

    assert broadcast_fan_out(set_based, set_based=True) > 0
    assert broadcast_fan_out(by_orm, set_based=False) > 0

    written = _written(set_based)
    assert written == _written(by_orm)
    assert written["queued_once"]
    assert written["locks"] == ({"send_at"} if options.get("send_at") else {True})
    statuses = {dict(n)["status"] for n in written["notifications"]}
    assert statuses == {"'queued'", "'muted'"}
    assert Broadcast.objects.get(pk=set_based).status == "done"
    assert Broadcast.objects.get(pk=by_orm).status == "done"
