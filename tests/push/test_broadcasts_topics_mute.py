"""Broadcasts, topics and mute: who is reached, what is counted, what each answer says."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accounts.services import enrollment_remove
from keymaster.models import Counter
from push.models import Broadcast, Delivery, Notification, TopicMember
from push.selectors import DAY
from tests.drain import drain
from tests.factories import app_client, enroll, make_push_app, make_user, register, user_client


@pytest.fixture
def app(db):
    return make_push_app(daily_quota=100)


def _users(app, n, *, device=True, platform="android"):
    users = [make_user() for _ in range(n)]
    enroll(app, *users)
    if device:
        for user in users:
            register(user, app, platform=platform)
    return users


def _used_today(app) -> int:
    now = int(datetime.now(UTC).timestamp())
    row = Counter.objects.filter(key=f"quota:{app.app_id}", window_start=now - now % DAY).first()
    return row.count if row else 0


def _mute(user, app, muted=True):
    return user_client(user).patch(f"/account/apps/{app.app_id}", {"muted": muted}, format="json")


def _broadcast(app, **fields):
    return app_client(app).post(
        "/push/send/broadcast", {"title": "t", "body": "b", **fields}, format="json"
    )


def _members(app, topic, **body):
    return app_client(app).post(f"/push/topics/{topic}/members", body, format="json")


def test_broadcast_reaches_each_user_with_a_device_once(db, providers):
    app = make_push_app(daily_quota=100, webhook_url=f"{providers['webhook'].url}/receipts")
    reached = _users(app, 3)
    _users(app, 2, device=False)
    answer = _broadcast(app)
    assert answer.status_code == 202
    body = answer.json()
    assert body["recipients"] == 3
    drain()
    notifications = Notification.objects.filter(broadcast_id=body["broadcast_id"])
    assert sorted(n.user_id for n in notifications) == sorted(u.id for u in reached)
    assert len(providers["fcm"].messages) == 3
    shown = app_client(app).get(f"/push/broadcasts/{body['broadcast_id']}").json()
    assert shown["status"] == "done" and shown["recipients"] == 3
    assert shown["counts"] == {
        "scheduled": 0,
        "queued": 0,
        "delivered": 3,
        "failed": 0,
        "canceled": 0,
        "muted": 0,
    }
    one = app_client(app).get(f"/push/notifications/{notifications[0].id}").json()
    assert one["broadcast_id"] == body["broadcast_id"]
    assert _used_today(app) == 3
    receipts = [json.loads(post.body) for post in providers["webhook"].received()]
    assert len(receipts) == 3 and {r["broadcast_id"] for r in receipts} == {body["broadcast_id"]}


def test_broadcast_fan_out_run_twice_makes_one_notification_per_user(app, settings):
    settings.PUSH_BROADCAST_CHUNK = 2
    _users(app, 5)
    broadcast_id = _broadcast(app).json()["broadcast_id"]
    from push.delivery.fanout import broadcast_fan_out, broadcast_fan_out_chunk

    assert broadcast_fan_out_chunk(broadcast_id) == 2  # one chunk, then the worker "dies"
    broadcast_fan_out(broadcast_id)
    broadcast_fan_out(broadcast_id)  # the task handed out again: nothing left to do
    assert Notification.objects.filter(broadcast_id=broadcast_id).count() == 5


def test_broadcast_by_platform_and_topic(app):
    android = _users(app, 2)
    web = _users(app, 2, platform="ios")
    assert _broadcast(app, platforms=["ios"]).json()["recipients"] == 2
    assert _members(app, "gym.news", add=[str(android[0].id), str(web[0].id)]).status_code == 200
    assert _broadcast(app, topic="gym.news").json()["recipients"] == 2
    assert _broadcast(app, topic="gym.news", platforms=["android"]).json()["recipients"] == 1
    missing = _broadcast(app, topic="nope")
    assert missing.status_code == 404


def test_broadcast_dry_run_counts_without_sending(app):
    _users(app, 4)
    answer = _broadcast(app, dry_run=True)
    assert answer.status_code == 200
    assert answer.json() == {"broadcast_id": None, "recipients": 4, "dry_run": True}
    assert not Broadcast.objects.exists() and _used_today(app) == 0


def test_broadcast_larger_than_the_quota_left_is_refused_whole(db):
    app = make_push_app(daily_quota=3)
    _users(app, 4)
    refused = _broadcast(app)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["recipients"] == 4 and error["remaining"] == 3
    assert "4 recipients" in error["message"] and "only 3" in error["message"]
    assert not Broadcast.objects.exists() and _used_today(app) == 0


def test_broadcast_cancel_stops_what_was_not_handed_over_and_gives_quota_back(app, providers):
    _users(app, 3)
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    broadcast_id = _broadcast(app, send_at=send_at).json()["broadcast_id"]
    drain()
    shown = app_client(app).get(f"/push/broadcasts/{broadcast_id}").json()
    assert shown["status"] == "scheduled" and shown["counts"]["scheduled"] == 3
    held = Counter.objects.filter(key=f"quota:{app.app_id}")
    assert sum(held.values_list("count", flat=True)) == 3  # on the day it is due
    canceled = app_client(app).post(f"/push/broadcasts/{broadcast_id}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["counts"]["canceled"] == 3
    assert canceled.json()["status"] == "canceled"
    assert not Delivery.objects.exclude(status="canceled").exists()
    assert sum(held.values_list("count", flat=True)) == 0


def test_broadcast_of_another_app_is_a_404(app):
    _users(app, 1)
    broadcast_id = _broadcast(app).json()["broadcast_id"]
    other = make_push_app()
    assert app_client(other).get(f"/push/broadcasts/{broadcast_id}").status_code == 404
    assert app_client(other).post(f"/push/broadcasts/{broadcast_id}/cancel").status_code == 404


# Topics


def test_topic_members_must_be_enrolled(app):
    enrolled = _users(app, 1, device=False)
    stranger = make_user()
    answer = _members(app, "shift-a", add=[str(enrolled[0].id), str(stranger.id)])
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "not_enrolled"
    assert answer.json()["error"]["user_ids"] == [str(stranger.id)]
    assert not TopicMember.objects.exists()


def test_topic_members_at_most_10000_ids_a_call(app):
    ids = [str(uuid.uuid4()) for _ in range(10_001)]
    answer = _members(app, "big", add=ids)
    assert answer.status_code == 400
    assert "add" in answer.json()["error"]["fields"]


@pytest.mark.parametrize("name", ["has space", "x" * 65, "ümlaut", "semi;colon"])
def test_topic_names_are_checked(app, name):
    answer = _members(app, name, add=[])
    assert answer.status_code == 400
    assert "topic" in answer.json()["error"]["fields"]


def test_topics_list_members_and_delete(app):
    users = _users(app, 3, device=False)
    ids = sorted(str(u.id) for u in users)
    assert _members(app, "a", add=ids).json() == {"topic": "a", "members": 3}
    assert _members(app, "a", add=ids[:1]).json()["members"] == 3  # adding twice is once
    assert _members(app, "a", remove=ids[:1]).json()["members"] == 2
    _members(app, "b", add=ids[:1])
    client = app_client(app)
    assert client.get("/push/topics").json() == {
        "topics": [{"topic": "a", "members": 2}, {"topic": "b", "members": 1}],
        "total": 2,
    }
    page = client.get("/push/topics/a/members?limit=1&offset=1").json()
    assert page["user_ids"] == ids[2:3] and page["members"] == 2
    assert client.delete("/push/topics/a").status_code == 204
    assert client.delete("/push/topics/a").status_code == 404
    assert client.get("/push/topics").json()["total"] == 1


def test_a_user_removed_from_the_app_leaves_its_topics(app):
    user = _users(app, 1, device=False)[0]
    _members(app, "a", add=[str(user.id)])
    enrollment_remove(app=app, user_id=user.id)
    assert not TopicMember.objects.exists()


def test_topics_of_another_app_are_not_seen(app):
    user = _users(app, 1, device=False)[0]
    _members(app, "mine", add=[str(user.id)])
    other = make_push_app()
    assert app_client(other).get("/push/topics").json()["total"] == 0
    assert app_client(other).get("/push/topics/mine/members").status_code == 404


# Mute


def test_mute_is_shown_per_app_and_only_for_enrolled_apps(app):
    user = _users(app, 1)[0]
    assert _mute(user, app).json() == {"app_id": str(app.app_id), "muted": True}
    apps = user_client(user).get("/account/devices").json()["apps"]
    assert [a["muted"] for a in apps] == [True]
    assert _mute(user, make_push_app()).status_code == 404
    assert _mute(user, app, muted="yes").status_code == 400


def test_a_muted_user_is_recorded_as_muted_on_every_send(app, providers):
    muted, other = _users(app, 2)
    _mute(muted, app)
    client = app_client(app)
    single = client.post("/push/send", {"user_id": str(muted.id), "title": "t", "body": "b"})
    bulk = client.post(
        "/push/send/bulk",
        {"user_ids": [str(muted.id), str(other.id)], "title": "t", "body": "b"},
        format="json",
    )
    batch = client.post(
        "/push/send/batch",
        {"notifications": [{"user_id": str(muted.id), "title": "t", "body": "b"}]},
        format="json",
    )
    broadcast = _broadcast(app)
    assert {single.status_code, bulk.status_code, batch.status_code, broadcast.status_code} == {202}
    assert broadcast.json()["recipients"] == 2
    drain()
    mine = Notification.objects.filter(user_id=muted.id)
    assert mine.count() == 4 and {n.status for n in mine} == {"muted"}
    assert not Delivery.objects.filter(notification__user_id=muted.id).exists()
    assert len(providers["fcm"].messages) == 2  # the other user: bulk and broadcast
    assert not any(r for r in providers["webhook"].received() if str(muted.id) in str(r))
    assert _used_today(app) == 2
    counts = client.get(f"/push/broadcasts/{broadcast.json()['broadcast_id']}").json()["counts"]
    assert counts["muted"] == 1 and counts["delivered"] == 1


def test_unmuting_affects_only_later_sends(app, providers):
    user = _users(app, 1)[0]
    _mute(user, app)
    client = app_client(app)
    first = client.post("/push/send", {"user_id": str(user.id), "title": "t", "body": "b"})
    _mute(user, app, muted=False)
    second = client.post("/push/send", {"user_id": str(user.id), "title": "t", "body": "b"})
    drain()
    assert (
        client.get(f"/push/notifications/{first.json()['notification_id']}").json()["status"]
        == "muted"
    )
    assert (
        client.get(f"/push/notifications/{second.json()['notification_id']}").json()["status"]
        == "delivered"
    )


# Quota arithmetic


def test_cancelling_one_of_a_broadcast_then_the_broadcast_gives_each_back_once(app):
    _users(app, 4)
    send_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    broadcast_id = _broadcast(app, send_at=send_at).json()["broadcast_id"]
    drain()
    held = Counter.objects.filter(key=f"quota:{app.app_id}")
    assert sum(held.values_list("count", flat=True)) == 4
    one = Notification.objects.filter(broadcast_id=broadcast_id).first()
    assert app_client(app).post(f"/push/notifications/{one.id}/cancel").status_code == 200
    assert sum(held.values_list("count", flat=True)) == 3
    app_client(app).post(f"/push/broadcasts/{broadcast_id}/cancel")
    assert sum(held.values_list("count", flat=True)) == 0
    app_client(app).post(f"/push/broadcasts/{broadcast_id}/cancel")  # again: nothing more
    assert sum(held.values_list("count", flat=True)) == 0
    assert Broadcast.objects.get(pk=broadcast_id).quota_taken == 0


def test_a_broadcast_canceled_mid_fan_out_stops_and_gives_back_the_rest(app, settings):
    settings.PUSH_BROADCAST_CHUNK = 2
    _users(app, 5)
    broadcast_id = _broadcast(app).json()["broadcast_id"]
    from push.delivery.fanout import broadcast_fan_out, broadcast_fan_out_chunk

    broadcast_fan_out_chunk(broadcast_id)  # 2 of 5 made, not yet handed to a provider
    answer = app_client(app).post(f"/push/broadcasts/{broadcast_id}/cancel").json()
    assert answer["status"] == "canceled" and answer["counts"]["canceled"] == 2
    broadcast_fan_out(broadcast_id)
    assert Notification.objects.filter(broadcast_id=broadcast_id).count() == 2
    assert _used_today(app) == 0


def test_users_muting_between_acceptance_and_fan_out_are_given_back(app):
    users = _users(app, 3)
    broadcast_id = _broadcast(app).json()["broadcast_id"]
    assert _used_today(app) == 3
    _mute(users[0], app)
    drain()
    assert _used_today(app) == 2
    counts = app_client(app).get(f"/push/broadcasts/{broadcast_id}").json()["counts"]
    assert counts["muted"] == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_tasks_fanning_out_one_broadcast_at_once_make_one_notification_per_user(settings):
    from django.db import connection

    from push.delivery.fanout import broadcast_fan_out
    from tests.concurrency import concurrently

    settings.PUSH_BROADCAST_CHUNK = 3
    app = make_push_app(daily_quota=100)
    _users(app, 20)
    broadcast_id = _broadcast(app).json()["broadcast_id"]

    def fan_out(_: int) -> int:
        try:
            return broadcast_fan_out(broadcast_id)
        finally:
            connection.close()

    made = concurrently(2, fan_out)
    assert sum(made) == 20
    notifications = Notification.objects.filter(broadcast_id=broadcast_id)
    assert notifications.count() == notifications.values("user_id").distinct().count() == 20
    assert Broadcast.objects.get(pk=broadcast_id).status == "done"
