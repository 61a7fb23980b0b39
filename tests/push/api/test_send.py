"""POST /push/send, /bulk, /batch: validation, enrollment, records, queued work, dry runs."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from accounts.models import App
from push.models import Delivery, Notification
from push.selectors import app_for_send
from push.services.config import push_config_update
from tests.factories import (
    app_client,
    enroll,
    make_app,
    make_push_app,
    make_user,
    register,
    user_client,
)

pytestmark = pytest.mark.django_db


def _send(app, body, path="/push/send", **headers):
    return app_client(app).post(path, body, **headers)


def _message(**extra):
    return {
        "title": "Your shift starts in 30 min",
        "body": "Open GymOps to view details.",
        "data": {"route": "/schedule"},
        **extra,
    }


def test_single_send_stores_one_notification_and_a_delivery_per_device(app, users):
    register(users[0], app)
    register(users[0], app, platform="ios")
    response = _send(app, _message(user_id=str(users[0].id), ttl=3600))
    assert response.status_code == 202
    notification = Notification.objects.get(pk=response.json()["notification_id"])
    assert (notification.title, notification.data, notification.ttl) == (
        "Your shift starts in 30 min",
        {"route": "/schedule"},
        3600,
    )
    assert notification.status == "queued"
    assert Delivery.objects.filter(notification=notification, status="queued").count() == 2
    assert response["RateLimit-Limit"] == "10000" and response["RateLimit-Remaining"] == "9999"


def test_delivery_work_is_queued_in_chunks(app, users, settings):
    settings.PUSH_DELIVERY_CHUNK = 2
    for _ in range(5):
        register(users[0], app)
    before = OrmQ.objects.count()
    _send(app, _message(user_id=str(users[0].id)))
    assert OrmQ.objects.count() - before == 3  # 5 deliveries in chunks of 2


def test_user_without_devices_gets_a_no_devices_notification(app, users):
    response = _send(app, _message(user_id=str(users[1].id)))
    assert response.status_code == 202
    assert Notification.objects.get(pk=response.json()["notification_id"]).status == "no_devices"


def test_bulk_answers_ids_in_user_order(app, users):
    ids = [str(u.id) for u in users]
    response = _send(
        app,
        {"user_ids": ids, "title": "Gym closes early today", "body": "Closing at 6pm", "data": {}},
        "/push/send/bulk",
    )
    assert response.status_code == 202
    notification_ids = response.json()["notification_ids"]
    assert [str(Notification.objects.get(pk=n).user_id) for n in notification_ids] == ids


def test_batch_answers_ids_in_order(app, users):
    items = [
        {"user_id": str(users[0].id), "title": "Shift approved", "body": "..."},
        {"user_id": str(users[1].id), "title": "Time off denied", "body": "..."},
    ]
    response = _send(app, {"notifications": items}, "/push/send/batch")
    assert response.status_code == 202
    titles = [Notification.objects.get(pk=n).title for n in response.json()["notification_ids"]]
    assert titles == ["Shift approved", "Time off denied"]


def test_bulk_of_500_is_a_handful_of_statements(app, settings):
    users = [make_user() for _ in range(500)]
    enroll(app, *users)
    body = {"user_ids": [str(u.id) for u in users], "title": "t", "body": "b"}
    client = app_client(app)
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/push/send/bulk", body)
    assert response.status_code == 202
    assert len(queries) <= 15, [q["sql"][:80] for q in queries]


# --- validation at each edge ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": None}, "title"),
        ({"title": "x" * 257}, "title"),
        ({"body": ""}, "body"),
        ({"body": "x" * 4097}, "body"),
        ({"data": {"from": "x"}}, "data.from"),
        ({"data": {"google.c.a.e": "1"}}, "data.google.c.a.e"),
        ({"data": {"gcm.n.e": "1"}}, "data.gcm.n.e"),
        ({"data": {"message_type": "x"}}, "data.message_type"),
        ({"data": {"collapse_key": "x"}}, "data.collapse_key"),
        ({"data": ["route"]}, "data"),
        ({"data": {"k": "x" * 4090}}, "data"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": 2_419_201}, "ttl"),
        ({"priority": "urgent"}, "priority"),
        ({"urgency": "asap"}, "urgency"),
        ({"user_id": "not-a-uuid"}, "user_id"),
    ],
)
def test_invalid_single_send_is_400_naming_the_field(app, users, change, field):
    body = {
        k: v for k, v in {**_message(user_id=str(users[0].id)), **change}.items() if v is not None
    }
    response = _send(app, body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"], response.json()
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"title": "x" * 256},
        {"body": "x" * 4096},
        {"ttl": 0},
        {"ttl": 2_419_200},
        {"data": {"k": "x" * (4096 - len('{"k":""}'))}},
        {"priority": "high", "collapse_key": "score"},
        {"urgency": "very-low"},
        {"title": "🚀 ünïcødé \u202e"},
    ],
)
def test_limits_at_their_edge_are_accepted(app, users, change):
    assert _send(app, {**_message(user_id=str(users[0].id)), **change}).status_code == 202


def test_bulk_limit_edge_and_one_past(app, settings):
    settings.PUSH_MAX_BATCH_SIZE = 3
    users = [make_user() for _ in range(4)]
    enroll(app, *users)
    ids = [str(u.id) for u in users]
    assert (
        _send(app, {"user_ids": ids[:3], "title": "t", "body": "b"}, "/push/send/bulk").status_code
        == 202
    )
    past = _send(app, {"user_ids": ids, "title": "t", "body": "b"}, "/push/send/bulk")
    assert past.status_code == 400 and "user_ids" in past.json()["error"]["fields"]
    batch = [{"user_id": i, "title": "t", "body": "b"} for i in ids]
    assert _send(app, {"notifications": batch[:3]}, "/push/send/batch").status_code == 202
    assert _send(app, {"notifications": batch}, "/push/send/batch").status_code == 400


def test_default_batch_limit_is_500(app):
    ids = [str(make_user().id) for _ in range(501)]
    response = _send(app, {"user_ids": ids, "title": "t", "body": "b"}, "/push/send/bulk")
    assert response.status_code == 400
    assert "500" in response.json()["error"]["message"]


def test_bad_batch_items_are_all_listed_by_index_and_nothing_is_sent(app, users):
    items = [
        {"user_id": str(users[0].id), "title": "ok", "body": "ok"},
        {"user_id": str(users[1].id), "title": "", "body": "ok"},
        {"user_id": str(users[2].id), "title": "ok"},
    ]
    response = _send(app, {"notifications": items}, "/push/send/batch")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert "notifications[1].title" in fields and "notifications[2].body" in fields
    assert not Notification.objects.exists()


def test_duplicate_user_ids_in_a_bulk_are_400_by_index(app, users):
    ids = [str(users[0].id), str(users[1].id), str(users[0].id)]
    response = _send(app, {"user_ids": ids, "title": "t", "body": "b"}, "/push/send/bulk")
    assert response.status_code == 400
    assert "user_ids[2]" in response.json()["error"]["fields"]


def test_users_not_enrolled_are_403_listing_them_and_nothing_is_sent(app, users):
    strangers = [make_user(), make_user()]
    ids = [str(users[0].id)] + [str(u.id) for u in strangers]
    response = _send(app, {"user_ids": ids, "title": "t", "body": "b"}, "/push/send/bulk")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "not_enrolled"
    assert error["user_ids"] == [str(u.id) for u in strangers]
    assert not Notification.objects.exists()


def test_push_disabled_app_cannot_send(users):
    app = make_app()[0]
    enroll(app, users[0])
    response = _send(app, _message(user_id=str(users[0].id)))
    assert response.status_code == 403 and response.json()["error"]["code"] == "push_disabled"


def test_invalid_json_is_400():
    app = make_app()[0]
    response = app_client(app).post("/push/send", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_dry_run_validates_and_counts_nothing(app, users):
    response = _send(app, _message(user_id=str(users[0].id), dry_run=True))
    assert response.status_code == 200
    assert response.json() == {"notification_id": None, "dry_run": True}
    assert not Notification.objects.exists()
    assert response["RateLimit-Remaining"] == "10000"


# --- who may send ---------------------------------------------------------------------------


def test_user_token_on_send_is_401(app, users):
    response = user_client(users[0]).post("/push/send", _message(user_id=str(users[0].id)))
    assert response.status_code == 401


def test_client_token_without_push_send_is_403(app, users):
    response = app_client(app, scopes=[]).post("/push/send", _message(user_id=str(users[0].id)))
    assert response.status_code == 403


def test_another_apps_client_cannot_reach_this_apps_users(app, users):
    other = make_push_app()
    response = _send(other, _message(user_id=str(users[0].id)))
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_enrolled"


# --- GET /push/notifications/{id} ---------------------------------------------------------


def test_notification_status_with_deliveries(app, users):
    device = register(users[0], app)
    notification_id = _send(app, _message(user_id=str(users[0].id))).json()["notification_id"]
    body = app_client(app).get(f"/push/notifications/{notification_id}").json()
    assert body["status"] == "queued"
    assert body["deliveries"] == [
        {
            "device_id": str(device.id),
            "platform": "android",
            "status": "queued",
            "error": None,
            "attempts": 0,
            "updated_at": body["deliveries"][0]["updated_at"],
            "opened_at": None,
        }
    ]


def test_another_app_cannot_read_the_notification(app, users):
    notification_id = _send(app, _message(user_id=str(users[0].id))).json()["notification_id"]
    assert (
        app_client(make_app()[0]).get(f"/push/notifications/{notification_id}").status_code == 404
    )


def test_payload_is_logged_without_content(app, users, caplog):
    register(users[0], app)
    _send(app, _message(user_id=str(users[0].id), title="secret title text"))
    assert "secret title text" not in caplog.text
    assert json.dumps({"route": "/schedule"}) not in caplog.text


# --- the send path's own SQL (push.selectors.app_for_send, notifications._devices_of) -------


def test_a_send_reaches_only_the_devices_its_users_have_in_this_app(app, users):
    other = make_push_app()
    enroll(other, users[0], users[1])
    mine = register(users[0], app)
    register(users[0], other)
    register(users[1], other)
    body = {"user_ids": [str(users[0].id), str(users[1].id)], "title": "t", "body": "b"}
    first, second = _send(app, body, "/push/send/bulk").json()["notification_ids"]
    assert list(Delivery.objects.filter(notification_id=first).values_list("device_id")) == [
        (mine.id,)
    ]
    assert Notification.objects.get(pk=second).status == "no_devices"


def test_a_single_send_is_six_statements(app, users):
    register(users[0], app)
    client = app_client(app)
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/push/send", _message(user_id=str(users[0].id)))
    assert response.status_code == 202
    # The app with its config, the devices, the notification, the delivery, the queued task
    # and the quota count (COPY is not seen here; savepoints and commits are not counted).
    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 6, [s[:80] for s in statements]


def test_app_for_send_brings_what_a_send_reads_of_the_config_and_no_secret(
    app, django_assert_num_queries
):
    loaded = app_for_send(str(app.app_id))
    assert (loaded.pk, loaded.name, loaded.secret_rotated_at) == (
        app.pk,
        app.name,
        app.secret_rotated_at,
    )
    with django_assert_num_queries(0):
        config = loaded.push_config
        assert (config.app_id, config.enabled, config.daily_quota) == (app.pk, True, 10_000)
    assert {"webhook_secret", "vapid_private_key", "fcm_service_account"} <= (
        config.get_deferred_fields()
    )


def test_app_for_send_of_an_app_without_config_unknown_or_malformed_ids():
    bare = make_app()[0]
    assert getattr(app_for_send(bare.app_id), "push_config", None) is None
    with pytest.raises(App.DoesNotExist):
        app_for_send(uuid.uuid4())
    with pytest.raises(ValueError):
        app_for_send("not-a-uuid")


def test_an_app_whose_push_is_turned_off_cannot_send(app, users):
    push_config_update(app=app, actor=None, enabled=False)
    response = _send(app, _message(user_id=str(users[0].id)))
    assert response.status_code == 403 and response.json()["error"]["code"] == "push_disabled"
