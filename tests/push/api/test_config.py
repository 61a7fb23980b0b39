"""GET/PATCH /push/config/{app_id} and the webhook secret's rotation."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from push.models import AuditEvent, PushConfig
from tests.factories import app_client, make_admin, make_app, make_user, user_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    return make_app()[0]


@pytest.fixture
def admin(app):
    return user_client(make_admin(app))


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_first_enable_provisions_vapid_and_webhook_secret(app, admin):
    response = admin.patch(
        f"/push/config/{app.app_id}",
        {
            "enabled": True,
            "webhook_url": "https://8.8.8.8/hooks/push-receipts",
            "daily_quota": 10000,
        },
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["enabled"] is True
    assert body["webhook_secret"].startswith("whsec_")
    assert len(base64.b64decode(body["webhook_secret"][6:])) >= 24
    point = _b64url_decode(body["vapid_public_key"])
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)  # a real P-256 point
    assert body["daily_quota"] == 10000
    assert body["device_count"] == 0 and body["notifications_today"] == 0
    assert AuditEvent.objects.filter(app=app, action="config.update").exists()


def test_disable_keeps_and_reenable_does_not_rotate(app, admin):
    first = admin.patch(f"/push/config/{app.app_id}", {"enabled": True}).json()
    off = admin.patch(f"/push/config/{app.app_id}", {"enabled": False}).json()
    on = admin.patch(f"/push/config/{app.app_id}", {"enabled": True}).json()
    assert off["enabled"] is False
    for state in (off, on):
        assert state["webhook_secret"] == first["webhook_secret"]
        assert state["vapid_public_key"] == first["vapid_public_key"]


@pytest.mark.parametrize(
    "name",
    [
        "enabled",
        "webhook_url",
        "webhook_secret",
        "daily_quota",
        "device_count",
        "notifications_today",
        "vapid_public_key",
    ],
)
def test_get_shows_the_guide_fields(app, admin, name):
    admin.patch(f"/push/config/{app.app_id}", {"enabled": True})
    body = admin.get(f"/push/config/{app.app_id}").json()
    assert name in body
    assert body["daily_quota"] == 10000  # the guide's default


def test_rotate_webhook_secret(app, admin):
    old = admin.patch(f"/push/config/{app.app_id}", {"enabled": True}).json()["webhook_secret"]
    new = admin.post(f"/push/config/{app.app_id}/rotate-webhook-secret").json()["webhook_secret"]
    assert new != old and new.startswith("whsec_")
    assert admin.get(f"/push/config/{app.app_id}").json()["webhook_secret"] == new


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain http to a host that is not allowlisted
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest",
        "https://10.0.0.1/hook",
        "https://localhost/hook",
        "not a url",
    ],
)
def test_bad_webhook_url_is_400_naming_the_field(app, admin, url, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ""
    response = admin.patch(f"/push/config/{app.app_id}", {"webhook_url": url})
    assert response.status_code == 400
    assert "webhook_url" in response.json()["error"]["fields"]
    assert not PushConfig.objects.filter(app=app).exclude(webhook_url="").exists()


def test_http_webhook_allowed_for_allowlisted_host(app, admin, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = "127.0.0.1"
    response = admin.patch(f"/push/config/{app.app_id}", {"webhook_url": "http://127.0.0.1:9/hook"})
    assert response.status_code == 200
    assert response.json()["webhook_url"] == "http://127.0.0.1:9/hook"
    assert PushConfig.objects.get(app=app).webhook_url == "http://127.0.0.1:9/hook"


@pytest.mark.parametrize("quota", [0, -1, "many", 1.5])
def test_bad_daily_quota_is_400_naming_the_field(app, admin, quota):
    response = admin.patch(f"/push/config/{app.app_id}", {"daily_quota": quota})
    assert response.status_code == 400
    assert "daily_quota" in response.json()["error"]["fields"]


def test_quota_of_one_is_accepted(app, admin):
    assert admin.patch(f"/push/config/{app.app_id}", {"daily_quota": 1}).json()["daily_quota"] == 1


def test_only_admins_of_the_app(app):
    other_admin = user_client(make_admin(make_app()[0]))
    assert other_admin.get(f"/push/config/{app.app_id}").status_code == 404
    assert other_admin.patch(f"/push/config/{app.app_id}", {"enabled": True}).status_code == 404
    assert user_client(make_user()).get(f"/push/config/{app.app_id}").status_code == 404
    assert app_client(app).get(f"/push/config/{app.app_id}").status_code == 401
    assert user_client(make_user(staff=True)).get(f"/push/config/{app.app_id}").status_code == 200


def test_secrets_are_encrypted_at_rest(app, admin):
    body = admin.patch(f"/push/config/{app.app_id}", {"enabled": True}).json()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT webhook_secret, vapid_private_key FROM push_pushconfig WHERE app_id = %s",
            [app.app_id.hex if connection.vendor == "sqlite" else app.app_id],
        )
        secret, private_key = cursor.fetchone()
    assert body["webhook_secret"] not in secret
    assert "PRIVATE KEY" not in private_key


def test_webhook_host_that_does_not_resolve_yet_is_accepted(app, admin, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ""
    url = "https://hooks.keymaster-test.invalid/push-receipts"  # .invalid never resolves
    response = admin.patch(f"/push/config/{app.app_id}", {"webhook_url": url})
    assert response.status_code == 200
    assert response.json()["webhook_url"] == url
