"""Open tracking: the open token in Web Push payloads, POST /push/opened, opened_at shown."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from push.models import Delivery, PushConfig
from push.open_tokens import OPEN_TOKEN_LENGTH, open_token_for, open_token_read
from tests.drain import drain
from tests.factories import (
    app_client,
    enable_push,
    enroll,
    fcm_token,
    make_app,
    make_user,
    register,
    user_client,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tracked(providers):
    app = make_app()[0]
    config = enable_push(app, track_opens=True)
    user = make_user()
    enroll(app, user)
    return app, config, user


def _send(app, user):
    response = app_client(app).post(
        "/push/send", {"user_id": str(user.id), "title": "Hi", "body": "There"}, format="json"
    )
    assert response.status_code == 202
    return response.json()["notification_id"]


def _payload(providers):
    [received] = providers["webpush"].received()
    return json.loads(received.payload)


def test_tokens_name_one_delivery_and_cannot_be_forged():
    token = open_token_for(12345)
    assert len(token) == OPEN_TOKEN_LENGTH
    assert open_token_read(token) == 12345
    forged = open_token_for(12346)[:11] + token[11:]  # another id with this MAC
    assert open_token_read(forged) is None
    assert open_token_read("x" * OPEN_TOKEN_LENGTH) is None
    assert open_token_read(None) is None


def test_a_click_reported_with_the_payload_token_is_recorded_once(tracked, providers):
    app, config, user = tracked
    register(user, app, providers["webpush"].new_subscription(config.vapid_public_key), "web")
    notification_id = _send(app, user)
    drain()
    payload = _payload(providers)
    assert payload["notification_id"] == notification_id

    anonymous = APIClient()
    response = anonymous.post("/push/opened", {"token": payload["open_token"]}, format="json")
    assert response.status_code == 204
    again = anonymous.post("/push/opened", {"token": payload["open_token"]}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_opened"

    [delivery] = app_client(app).get(f"/push/notifications/{notification_id}").json()["deliveries"]
    assert delivery["opened_at"] is not None


def test_apps_that_do_not_track_opens_send_no_token(tracked, providers):
    app, config, user = tracked
    PushConfig.objects.filter(app=app).update(track_opens=False)
    register(user, app, providers["webpush"].new_subscription(config.vapid_public_key), "web")
    _send(app, user)
    drain()
    assert "open_token" not in _payload(providers)


def test_an_unknown_token_is_404(tracked):
    response = APIClient().post("/push/opened", {"token": "x" * 32}, format="json")
    assert response.status_code == 404
    assert "token" in response.json()["error"]["fields"]


def test_a_well_signed_token_of_no_delivery_is_404(tracked):
    token = open_token_for(2**62)  # genuine MAC, but no such delivery
    response = APIClient().post("/push/opened", {"token": token}, format="json")
    assert response.status_code == 404
    assert "token" in response.json()["error"]["fields"]


def test_a_phone_app_reports_an_open_with_the_users_jwt(tracked, providers):
    app, _, user = tracked
    register(user, app, fcm_token("opens"), "android")
    notification_id = _send(app, user)
    drain()
    [sent] = providers["fcm"].messages
    assert sent["data"]["notification_id"] == notification_id

    stranger = make_user()
    refused = user_client(stranger).post(
        "/push/opened", {"notification_id": notification_id}, format="json"
    )
    assert refused.status_code == 404
    anonymous = APIClient().post("/push/opened", {"notification_id": notification_id})
    assert anonymous.status_code in (401, 403)

    response = user_client(user).post(
        "/push/opened", {"notification_id": notification_id}, format="json"
    )
    assert response.status_code == 204
    assert Delivery.objects.get().opened_at is not None


def test_opens_are_refused_when_the_app_does_not_track_them(tracked, providers):
    app, _, user = tracked
    register(user, app, fcm_token("off"), "android")
    notification_id = _send(app, user)
    PushConfig.objects.filter(app=app).update(track_opens=False)
    response = user_client(user).post(
        "/push/opened", {"notification_id": notification_id}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "opens_not_tracked"
    assert Delivery.objects.get().opened_at is None


def test_either_a_token_or_a_notification_id(tracked, providers):
    response = APIClient().post("/push/opened", {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"

    app, config, user = tracked
    register(user, app, providers["webpush"].new_subscription(config.vapid_public_key), "web")
    notification_id = _send(app, user)
    drain()
    both = {"token": _payload(providers)["open_token"], "notification_id": notification_id}
    response = user_client(user).post("/push/opened", both, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert Delivery.objects.get().opened_at is None


def test_the_schema_shows_opened_at_the_config_fields_and_cors_headers():
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]
    assert "opened_at" in components["DeliveryOut"]["properties"]
    config_in = components["PatchedConfigInRequest"]["properties"]
    assert {"allowed_origins", "track_opens"} <= set(config_in)
    register_op = schema["paths"]["/push/devices/register"]["post"]
    assert "Access-Control-Allow-Origin" in register_op["responses"]["201"]["headers"]
    assert "origin_not_allowed" in register_op["responses"]["403"]["description"]
    send_op = schema["paths"]["/push/send"]["post"]
    assert "payload_too_large" in send_op["responses"]["400"]["description"]
    assert "/push/opened" in schema["paths"]
    for path, method, code in [
        ("/auth/token", "post", "200"),
        ("/push/devices/{id}", "delete", "204"),
        ("/account/devices", "get", "401"),
    ]:
        assert "Vary" in schema["paths"][path][method]["responses"][code]["headers"]
    assert "headers" not in schema["paths"]["/push/send"]["post"]["responses"]["400"]
