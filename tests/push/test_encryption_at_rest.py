"""Secrets at rest: nothing readable in the raw tables, and key rotation."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from push.models import Device, PushConfig
from tests.factories import enable_push, enroll, fcm_token, make_app, make_user, register
from tests.push.subscriptions import browser_subscription

pytestmark = pytest.mark.django_db


def _raw_dump() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT token, token_hmac FROM push_device")
        devices = cursor.fetchall()
        cursor.execute("SELECT webhook_secret, vapid_private_key FROM push_pushconfig")
        configs = cursor.fetchall()
    return repr(devices + configs)


@pytest.fixture
def stored():
    app = make_app()[0]
    config = enable_push(app)
    user = make_user()
    enroll(app, user)
    token, subscription = fcm_token("plain"), browser_subscription()
    register(user, app, token)
    register(user, app, subscription, "web")
    return token, subscription, PushConfig.objects.get(pk=config.pk)


def test_no_plaintext_secret_in_the_raw_tables(stored):
    token, subscription, config = stored
    dump = _raw_dump()
    for secret in (
        token,
        subscription["endpoint"],
        subscription["keys"]["p256dh"],
        subscription["keys"]["auth"],
        config.webhook_secret,
        "PRIVATE KEY",
    ):
        assert secret not in dump


def test_rotation_reencrypts_every_row_and_the_old_key_can_go(stored, settings):
    token, _, config = stored
    old = settings.TOKEN_ENCRYPTION_KEYS[0]
    new = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    settings.TOKEN_ENCRYPTION_KEYS = [new]
    assert {d.token for d in Device.objects.all()} >= {token}
    assert PushConfig.objects.get(pk=config.pk).webhook_secret == config.webhook_secret
    settings.TOKEN_ENCRYPTION_KEYS = [old]
    with pytest.raises(ImproperlyConfigured, match="rotate_encryption_keys"):
        list(Device.objects.all())
