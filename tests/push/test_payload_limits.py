"""Payload limits that hold at acceptance: each provider's limit, at the exact boundary byte.

The boundary is found from the providers' own rules (RFC 8291's aes128gcm framing; FCM's 4,096
bytes of data keys and values, title and body) and proven against the local fakes: a message
of exactly the limit is delivered, one byte more is a 400 that stores and counts nothing.
"""

from __future__ import annotations

import json

import pytest

from fakes.fcm import payload_size as fcm_counted
from push.models import Broadcast, Notification, PushConfig
from push.selectors import notifications_today
from tests.drain import drain
from tests.factories import (
    app_client,
    enable_push,
    enroll,
    fcm_token,
    make_app,
    make_user,
    register,
)

pytestmark = pytest.mark.django_db

TITLE = "Größe"  # multi-byte: limits are bytes, not characters
DATA = {"route": "/schedule", "n": 7, "nested": {"a": [1, "zwei"]}}
ECE_FRAMING = 86 + 1 + 16  # RFC 8188 header with the 65-byte key id, delimiter, AEAD tag
LIMIT = 4096


def _web_boundary(track_opens: bool) -> int:
    """The body length (ASCII) whose encrypted Web Push message is exactly 4,096 bytes."""
    document = {"title": TITLE, "body": "", "data": DATA, "notification_id": "0" * 36}
    if track_opens:
        document["open_token"] = "0" * 32
    empty = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return LIMIT - ECE_FRAMING - len(empty)


def _fcm_boundary() -> int:
    """The body length whose FCM payload (data as strings + notification_id) is 4,096 bytes."""
    data = {
        k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        for k, v in DATA.items()
    }
    counted = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    return LIMIT - counted - len("notification_id") - 36 - len(TITLE.encode())


@pytest.fixture
def web_app(providers):
    app = make_app()[0]
    return app, enable_push(app)


def _user_with(app, config, fake_webpush, *platforms):
    user = make_user()
    enroll(app, user)
    for platform in platforms:
        if platform == "web":
            register(user, app, fake_webpush.new_subscription(config.vapid_public_key), "web")
        else:
            register(user, app, fcm_token(f"{platform}-{user.pk}"), platform)
    return user


def _send(app, user, body_length, path="/push/send", **extra):
    body = {"user_id": str(user.id), "title": TITLE, "body": "b" * body_length, "data": DATA}
    return app_client(app).post(path, {**body, **extra}, format="json")


@pytest.mark.parametrize("track_opens", [False, True])
def test_web_push_at_exactly_4096_encrypted_bytes_is_delivered(web_app, providers, track_opens):
    app, config = web_app
    PushConfig.objects.filter(app=app).update(track_opens=track_opens)
    user = _user_with(app, config, providers["webpush"], "web")
    boundary = _web_boundary(track_opens)

    assert _send(app, user, boundary).status_code == 202
    drain()

    [received] = providers["webpush"].received()
    assert len(received.payload) + ECE_FRAMING == LIMIT
    assert ("open_token" in json.loads(received.payload)) is track_opens


@pytest.mark.parametrize("track_opens", [False, True])
def test_web_push_one_byte_past_the_limit_is_refused_storing_and_counting_nothing(
    web_app, providers, track_opens
):
    app, config = web_app
    PushConfig.objects.filter(app=app).update(track_opens=track_opens)
    user = _user_with(app, config, providers["webpush"], "web")

    for dry_run in (True, False):
        response = _send(app, user, _web_boundary(track_opens) + 1, dry_run=dry_run)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "payload_too_large"
        assert (error["size"], error["limit"], error["provider"]) == (LIMIT + 1, LIMIT, "webpush")
        assert set(error["fields"]) == {"title", "body", "data"}
    assert not Notification.objects.exists()
    assert notifications_today(PushConfig.objects.get(app=app)) == 0


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_fcm_at_exactly_4096_payload_bytes_is_delivered_and_one_more_refused(
    web_app, providers, platform
):
    app, config = web_app
    user = _user_with(app, config, providers["webpush"], platform)
    boundary = _fcm_boundary()

    response = _send(app, user, boundary + 1)
    assert response.status_code == 400
    assert response.json()["error"]["provider"] == "fcm"
    assert response.json()["error"]["size"] == LIMIT + 1
    assert _send(app, user, boundary).status_code == 202
    drain()

    [sent] = providers["fcm"].messages
    assert fcm_counted(sent) == LIMIT


def test_a_user_with_a_browser_and_a_phone_is_held_to_the_tighter_limit(web_app, providers):
    app, config = web_app
    user = _user_with(app, config, providers["webpush"], "web", "android")
    tighter = min(_web_boundary(False), _fcm_boundary())
    provider = "webpush" if _web_boundary(False) < _fcm_boundary() else "fcm"

    response = _send(app, user, tighter + 1)
    assert response.status_code == 400
    assert response.json()["error"]["provider"] == provider
    assert _send(app, user, tighter).status_code == 202
    drain()
    assert len(providers["webpush"].received()) == 1
    assert len(providers["fcm"].messages) == 1


def test_only_the_platforms_the_target_users_have_count(web_app, providers):
    app, config = web_app
    phone_only = _user_with(app, config, providers["webpush"], "android")
    no_devices = _user_with(app, config, providers["webpush"])
    # Past the Web Push limit, within FCM's: nobody here has a browser.
    length = _web_boundary(False) + 1
    assert length <= _fcm_boundary()
    ids = {"user_ids": [str(phone_only.id), str(no_devices.id)]}
    assert _send(app, phone_only, length, path="/push/send/bulk", **ids).status_code == 202
    # 4,096 characters (the body's own limit) for a user with no device at all.
    assert _send(app, no_devices, 4096).status_code == 202


def test_a_batch_names_the_notification_that_is_too_large(web_app, providers):
    app, config = web_app
    small = _user_with(app, config, providers["webpush"], "web")
    large = _user_with(app, config, providers["webpush"], "web")
    items = [
        {"user_id": str(small.id), "title": "t", "body": "fits"},
        {"user_id": str(large.id), "title": TITLE, "body": "b" * 4000, "data": DATA},
    ]
    response = app_client(app).post("/push/send/batch", {"notifications": items}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {
        "notifications[1].title",
        "notifications[1].body",
        "notifications[1].data",
    }
    assert not Notification.objects.exists()


def test_data_values_may_be_any_json_and_reach_web_push_as_json(web_app, providers):
    app, config = web_app
    user = _user_with(app, config, providers["webpush"], "web")
    response = _send(app, user, 10)
    assert response.status_code == 202
    drain()
    [received] = providers["webpush"].received()
    assert json.loads(received.payload)["data"] == DATA
    detail = app_client(app).get(f"/push/notifications/{response.json()['notification_id']}")
    assert detail.json()["data"] == DATA


def _broadcast(app, body_length, **extra):
    body = {"title": TITLE, "body": "b" * body_length, "data": DATA}
    return app_client(app).post("/push/send/broadcast", {**body, **extra}, format="json")


def test_a_broadcast_past_a_providers_limit_is_refused_storing_and_counting_nothing(
    web_app, providers
):
    app, config = web_app
    _user_with(app, config, providers["webpush"], "web")
    _user_with(app, config, providers["webpush"], "android")
    tighter = min(_web_boundary(False), _fcm_boundary())
    provider = "webpush" if _web_boundary(False) < _fcm_boundary() else "fcm"

    for dry_run in (True, False):
        response = _broadcast(app, tighter + 1, dry_run=dry_run)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "payload_too_large"
        assert (error["size"], error["limit"], error["provider"]) == (LIMIT + 1, LIMIT, provider)
        assert set(error["fields"]) == {"title", "body", "data"}
    assert not Broadcast.objects.exists() and not Notification.objects.exists()
    assert notifications_today(PushConfig.objects.get(app=app)) == 0

    accepted = _broadcast(app, tighter)
    assert accepted.status_code == 202 and accepted.json()["recipients"] == 2


def test_a_broadcast_is_measured_for_the_providers_of_its_platforms_only(web_app, providers):
    app, config = web_app
    _user_with(app, config, providers["webpush"], "android")
    # Past the Web Push limit, within FCM's: phones only go through FCM.
    length = _web_boundary(False) + 1
    assert length <= _fcm_boundary()

    refused = _broadcast(app, length)  # no platforms: every provider, Web Push too
    assert refused.status_code == 400 and refused.json()["error"]["provider"] == "webpush"
    assert _broadcast(app, length, platforms=["web"]).status_code == 400
    phones = _broadcast(app, length, platforms=["android", "ios"])
    assert phones.status_code == 202 and phones.json()["recipients"] == 1
    assert _broadcast(app, _fcm_boundary() + 1, platforms=["ios"]).status_code == 400
