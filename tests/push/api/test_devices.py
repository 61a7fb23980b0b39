"""Device registration, /push/subscribe, listing, removal and the Account API."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.tokens import user_access_token_issue
from push.models import Device
from tests.factories import (
    app_client,
    enable_push,
    enroll,
    fcm_token,
    make_admin,
    make_app,
    make_user,
    register,
    user_client,
)
from tests.push.subscriptions import browser_subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(app):
    user = make_user()
    enroll(app, user)
    return user


def _register(user, app, token, platform="android"):
    return user_client(user).post(
        "/push/devices/register",
        {"app_id": str(app.app_id), "platform": platform, "push_token": token},
    )


def test_register_an_fcm_token(user, app):
    response = _register(user, app, fcm_token(1), "ios")
    assert response.status_code == 201
    device = Device.objects.get(pk=response.json()["device_id"])
    assert (device.user, device.platform, device.transport) == (user, "ios", "fcm")


def test_reregistering_keeps_the_device_id_and_moves_it_to_the_new_owner(user, app):
    first = _register(user, app, fcm_token(2)).json()["device_id"]
    new_owner = make_user()
    enroll(app, new_owner)
    again = _register(new_owner, app, fcm_token(2))
    assert again.status_code == 200
    assert again.json()["device_id"] == first
    assert Device.objects.get(pk=first).user == new_owner
    assert Device.objects.filter(app=app).count() == 1


@pytest.mark.parametrize("as_json_string", [False, True])
def test_register_a_web_push_subscription(user, app, as_json_string):
    subscription = browser_subscription()
    token = json.dumps(subscription) if as_json_string else subscription
    response = _register(user, app, token, "web")
    assert response.status_code == 201
    device = Device.objects.get(pk=response.json()["device_id"])
    assert device.transport == "webpush"
    assert json.loads(device.token)["endpoint"] == subscription["endpoint"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s.update(endpoint="http://push.example.net/x"), "push_token.endpoint"),
        (
            lambda s: s["keys"].update(p256dh=s["keys"]["p256dh"][:-4] + "AAAA"),
            "push_token.keys.p256dh",
        ),
        (lambda s: s["keys"].update(p256dh=s["keys"]["p256dh"][:40]), "push_token.keys.p256dh"),
        (lambda s: s["keys"].update(auth="AAAAAAAAAAAAAAAAAAAA"), "push_token.keys.auth"),
        (lambda s: s.pop("keys"), "push_token.keys"),
    ],
)
def test_malformed_subscription_is_400_naming_the_field(user, app, mutate, field):
    subscription = browser_subscription()
    mutate(subscription)
    response = _register(user, app, subscription, "web")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Device.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"app_id": None, "platform": "android", "push_token": "t" * 40}, "app_id"),
        ({"app_id": "nope", "platform": "android", "push_token": "t" * 40}, "app_id"),
        ({"platform": "windows", "push_token": "t" * 40}, "platform"),
        ({"platform": "android"}, "push_token"),
        ({"platform": "android", "push_token": "has spaces in it, not a token"}, "push_token"),
        ({"platform": "android", "push_token": 12345}, "push_token"),
        ({"platform": "ios", "push_token": browser_subscription()}, "push_token"),
    ],
)
def test_bad_registration_is_400_naming_the_field(user, app, body, field):
    body = {k: v for k, v in {"app_id": str(app.app_id), **body}.items() if v is not None}
    response = user_client(user).post("/push/devices/register", body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_push_not_enabled_is_403(user):
    disabled = make_app()[0]
    enroll(disabled, user)
    response = _register(user, disabled, fcm_token(3))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "push_disabled"


def test_not_enrolled_is_403(app):
    response = _register(make_user(), app, fcm_token(4))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_enrolled"


def test_eleventh_registration_in_an_hour_is_429(user, app):
    for n in range(10):
        assert _register(user, app, fcm_token(f"r{n}")).status_code == 201
    response = _register(user, app, fcm_token("r10"))
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600


def test_client_token_cannot_register(app):
    response = app_client(app).post(
        "/push/devices/register",
        {"app_id": str(app.app_id), "platform": "android", "push_token": fcm_token(5)},
    )
    assert response.status_code == 401


def test_tokens_are_encrypted_at_rest_and_found_by_hmac(user, app):
    token = fcm_token("secret-token")
    device_id = _register(user, app, token).json()["device_id"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT token, token_hmac FROM push_device")
        raw_token, token_hmac = cursor.fetchone()
    assert token not in raw_token and token not in token_hmac
    assert Device.objects.get(pk=device_id).token == token


# --- /push/subscribe (second seed) -------------------------------------------------------


@pytest.fixture
def default_app(app, settings):
    settings.PUSH_DEFAULT_APP_ID = str(app.app_id)
    return app


def test_subscribe_with_exactly_the_seed_body_and_the_cookie(default_app):
    user = make_user()
    client = APIClient(enforce_csrf_checks=True)
    client.cookies["access_token"] = user_access_token_issue(user)
    client.cookies["csrftoken"] = "a" * 32
    body = browser_subscription()
    response = client.post("/push/subscribe", body, HTTP_X_CSRFTOKEN="a" * 32)
    assert response.status_code == 200, response.json()
    assert response.json() == {"ok": True, "count": 1}
    # Upsert by (user, app, endpoint): the same subscription again is still one.
    again = client.post("/push/subscribe", body, HTTP_X_CSRFTOKEN="a" * 32)
    assert again.json() == {"ok": True, "count": 1}
    other = client.post(
        "/push/subscribe",
        browser_subscription("https://push.example.net/2"),
        HTTP_X_CSRFTOKEN="a" * 32,
    )
    assert other.json() == {"ok": True, "count": 2}


def test_subscribe_by_cookie_without_csrf_is_403_and_stores_nothing(default_app):
    client = APIClient(enforce_csrf_checks=True)
    client.cookies["access_token"] = user_access_token_issue(make_user())
    response = client.post("/push/subscribe", browser_subscription())
    assert response.status_code == 403
    assert not Device.objects.exists()


def test_subscribe_by_bearer_with_app_id(app, user):
    body = {**browser_subscription(), "app_id": str(app.app_id)}
    response = user_client(user).post("/push/subscribe", body)
    assert response.json() == {"ok": True, "count": 1}


def test_subscribe_unauthenticated_is_401(default_app):
    assert APIClient().post("/push/subscribe", browser_subscription()).status_code == 401


def test_subscribe_without_app_and_without_default_names_app_id(user, settings):
    settings.PUSH_DEFAULT_APP_ID = ""
    response = user_client(user).post("/push/subscribe", browser_subscription())
    assert response.status_code == 400
    assert "app_id" in response.json()["error"]["fields"]


# --- listing and removal ------------------------------------------------------------------


def test_admin_lists_devices_with_filters_and_pages(app, user):
    other = make_user()
    enroll(app, other)
    for n in range(3):
        register(user, app, fcm_token(f"l{n}"), "android")
    register(other, app, fcm_token("l-ios"), "ios")
    admin = user_client(make_admin(app))
    everything = admin.get(f"/push/devices/{app.app_id}").json()
    assert everything["total"] == 4
    assert set(everything["devices"][0]) >= {"device_id", "user_id", "platform", "last_seen_at"}
    assert admin.get(f"/push/devices/{app.app_id}?platform=ios").json()["total"] == 1
    assert admin.get(f"/push/devices/{app.app_id}?user_id={user.id}").json()["total"] == 3
    page = admin.get(f"/push/devices/{app.app_id}?limit=2&offset=2").json()
    assert len(page["devices"]) == 2 and page["total"] == 4
    assert admin.get(f"/push/devices/{app.app_id}?platform=bsd").status_code == 400


def test_other_admin_cannot_list(app):
    assert (
        user_client(make_admin(make_app()[0])).get(f"/push/devices/{app.app_id}").status_code == 404
    )


def test_app_backend_lists_its_own_devices_only(app, user):
    register(user, app, fcm_token("own"), "android")
    other = make_app()[0]
    backend = app_client(app)
    listed = backend.get(f"/push/devices/{app.app_id}?platform=android").json()
    assert listed["total"] == 1 and listed["devices"][0]["user_id"] == str(user.id)
    assert backend.get(f"/push/devices/{other.app_id}").status_code == 404
    assert app_client(app, scopes=[]).get(f"/push/devices/{app.app_id}").status_code == 403


def test_owner_removes_own_device(app, user):
    device = register(user, app)
    assert user_client(user).delete(f"/push/devices/{device.id}").status_code == 204
    assert not Device.objects.filter(pk=device.id).exists()


def test_app_backend_removes_its_device(app, user):
    device = register(user, app)
    assert app_client(app).delete(f"/push/devices/{device.id}").status_code == 204
    assert not Device.objects.filter(pk=device.id).exists()


def test_anyone_else_gets_404(app, user):
    device = register(user, app)
    assert user_client(make_user()).delete(f"/push/devices/{device.id}").status_code == 404
    assert app_client(make_app()[0]).delete(f"/push/devices/{device.id}").status_code == 404
    assert Device.objects.filter(pk=device.id).exists()


def test_client_without_push_send_gets_403(app, user):
    device = register(user, app)
    assert app_client(app, scopes=[]).delete(f"/push/devices/{device.id}").status_code == 403
    assert Device.objects.filter(pk=device.id).exists()


def test_account_devices_grouped_by_app(app, user):
    second = make_app(name="Zeta")[0]
    enable_push(second)
    enroll(second, user)
    register(user, app)
    register(user, app)
    register(user, second)
    register(make_user_enrolled(app), app)
    body = user_client(user).get("/account/devices").json()
    assert body["total"] == 3
    groups = {group["app_name"]: group for group in body["apps"]}
    assert len(groups[app.name]["devices"]) == 2 and len(groups["Zeta"]["devices"]) == 1
    assert {"platform", "last_seen_at", "device_id"} <= set(groups["Zeta"]["devices"][0])


def make_user_enrolled(app):
    user = make_user()
    enroll(app, user)
    return user
