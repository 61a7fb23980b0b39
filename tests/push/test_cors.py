"""CORS for apps' own web pages: allowed_origins on the push config, preflights, 403s."""

from __future__ import annotations

import pytest

from push.cors import origin_normalise
from push.models import Device
from tests.factories import (
    enroll,
    fcm_token,
    make_admin,
    make_push_app,
    make_user,
    user_client,
)

pytestmark = pytest.mark.django_db

SITE = "https://app.example.com"


def _preflight(client, path: str, origin: str, method: str = "POST"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


@pytest.mark.parametrize(
    "path",
    ["/auth/token", "/auth/token/refresh", "/push/devices/register", "/push/subscribe",
     "/push/opened", "/account/devices", "/push/devices/00000000-0000-0000-0000-000000000001"],
)  # fmt: skip
def test_preflight_from_an_allowed_origin_is_answered_without_credentials(client, path):
    make_push_app(allowed_origins=[SITE])
    response = _preflight(client, path, SITE)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SITE
    assert set(response["Access-Control-Allow-Headers"].split(", ")) == {
        "authorization",
        "content-type",
    }
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response
    assert "origin" in response["Vary"].lower()


def test_other_origins_get_no_cors_headers(client):
    make_push_app(allowed_origins=[SITE])
    response = _preflight(client, "/push/devices/register", "https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response
    assert "origin" in response["Vary"].lower()


def test_endpoints_a_browser_does_not_call_get_no_cors_headers(client):
    make_push_app(allowed_origins=[SITE])
    for path in ("/push/send", "/api/apps", "/oauth/token"):
        assert "Access-Control-Allow-Origin" not in _preflight(client, path, SITE)


def test_registration_from_an_origin_its_app_allows():
    app = make_push_app(allowed_origins=[SITE])
    user = make_user()
    enroll(app, user)
    response = user_client(user).post(
        "/push/devices/register",
        {"app_id": str(app.app_id), "platform": "android", "push_token": fcm_token(1)},
        format="json",
        HTTP_ORIGIN=SITE,
    )
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == SITE


def test_registration_from_an_origin_only_another_app_allows_is_refused():
    make_push_app(allowed_origins=["https://other.example.com"])
    app = make_push_app(allowed_origins=[SITE])
    user = make_user()
    enroll(app, user)
    response = user_client(user).post(
        "/push/devices/register",
        {"app_id": str(app.app_id), "platform": "android", "push_token": fcm_token(2)},
        format="json",
        HTTP_ORIGIN="https://other.example.com",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert not Device.objects.exists()


def test_same_origin_calls_need_no_allowed_origin():
    app = make_push_app()
    user = make_user()
    enroll(app, user)
    response = user_client(user).post(
        "/push/devices/register",
        {"app_id": str(app.app_id), "platform": "android", "push_token": fcm_token(3)},
        format="json",
        HTTP_ORIGIN="http://testserver",
    )
    assert response.status_code == 201
    assert Device.objects.filter(user=user, app=app, platform="android").count() == 1


def test_allowed_origins_are_set_normalised_and_shown():
    app = make_push_app()
    admin = make_admin(app)
    response = user_client(admin).patch(
        f"/push/config/{app.app_id}",
        {"allowed_origins": ["HTTPS://App.Example.com:443/", "http://localhost:5173", SITE]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["allowed_origins"] == [SITE, "http://localhost:5173"]


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("http://app.example.com", "must use https"),
        ("https://app.example.com/path", "no path"),
        ("https://app.example.com?x=1", "no path"),
        ("ftp://app.example.com", "must be an origin"),
        ("app.example.com", "must be an origin"),
        ("https://user@app.example.com", "no path"),
    ],
)
def test_bad_origins_are_a_400_naming_the_item(origin, reason):
    app = make_push_app()
    admin = make_admin(app)
    response = user_client(admin).patch(
        f"/push/config/{app.app_id}", {"allowed_origins": [SITE, origin]}, format="json"
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert list(fields) == ["allowed_origins[1]"]
    assert reason in fields["allowed_origins[1]"][0]


def test_at_most_fifty_origins():
    app = make_push_app()
    admin = make_admin(app)
    origins = [f"https://a{n}.example.com" for n in range(51)]
    response = user_client(admin).patch(
        f"/push/config/{app.app_id}", {"allowed_origins": origins}, format="json"
    )
    assert response.status_code == 400
    assert "allowed_origins" in response.json()["error"]["fields"]


def test_local_development_origins_may_be_plain_http():
    assert origin_normalise("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert origin_normalise("http://localhost") == "http://localhost"
