"""Rotating the webhook secret: the replaced secret signs beside the new one for 24 hours."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from push.models import PushConfig
from tests.drain import drain
from tests.factories import (
    app_client,
    enable_push,
    enroll,
    make_admin,
    make_app,
    make_user,
    register,
    user_client,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rotated(providers, fake_webhook):
    """An app whose webhook secret was just rotated through the API: (app, user, old, new)."""
    app = make_app()[0]
    old = enable_push(app, webhook_url=f"{fake_webhook.url}/hooks/r").webhook_secret
    user = make_user()
    enroll(app, user)
    register(user, app)
    answer = user_client(make_admin(app)).post(f"/push/config/{app.app_id}/rotate-webhook-secret")
    assert answer.status_code == 200
    new = answer.json()["webhook_secret"]
    assert new != old
    return app, user, old, new


def _receipt(app, user, fake_webhook):
    body = {"user_id": str(user.id), "title": "t", "body": "b"}
    assert app_client(app).post("/push/send", body, format="json").status_code == 202
    drain()
    return fake_webhook.received()[-1]


def _legacy(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_during_the_overlap_both_secrets_sign(rotated, fake_webhook):
    app, user, old, new = rotated
    receipt = _receipt(app, user, fake_webhook)
    assert len(receipt.headers["webhook-signature"].split()) == 2
    Webhook(new).verify(receipt.body, receipt.headers)
    Webhook(old).verify(receipt.body, receipt.headers)
    # The guide's single-valued header stays with the old secret until the overlap ends.
    assert receipt.headers["x-keymaster-signature"] == _legacy(old, receipt.body)
    until = PushConfig.objects.get(app=app).webhook_secret_previous_until
    assert timedelta(hours=23, minutes=59) < until - timezone.now() <= timedelta(hours=24)


def test_after_the_overlap_only_the_new_secret_signs(rotated, fake_webhook):
    app, user, old, new = rotated
    PushConfig.objects.filter(app=app).update(
        webhook_secret_previous_until=timezone.now() - timedelta(seconds=1)
    )
    receipt = _receipt(app, user, fake_webhook)
    assert len(receipt.headers["webhook-signature"].split()) == 1
    Webhook(new).verify(receipt.body, receipt.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(receipt.body, receipt.headers)
    assert receipt.headers["x-keymaster-signature"] == _legacy(new, receipt.body)


def test_a_second_rotation_keeps_only_the_secret_it_replaced(rotated, fake_webhook):
    app, user, old, new = rotated
    newest = user_client(make_admin(app)).post(f"/push/config/{app.app_id}/rotate-webhook-secret")
    newest = newest.json()["webhook_secret"]
    receipt = _receipt(app, user, fake_webhook)
    Webhook(newest).verify(receipt.body, receipt.headers)
    Webhook(new).verify(receipt.body, receipt.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(receipt.body, receipt.headers)


def test_the_replaced_secret_is_encrypted_at_rest(rotated):
    app, _, old, _ = rotated
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT webhook_secret_previous FROM push_pushconfig WHERE app_id = %s", [app.pk]
        )
        [raw] = cursor.fetchone()
    assert raw and old not in raw and old.removeprefix("whsec_") not in raw
    assert PushConfig.objects.get(app=app).webhook_secret_previous == old
