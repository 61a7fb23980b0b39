"""Secrets at rest: nothing readable in the raw tables, and key rotation."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from fakes.fcm import new_service_account
from keymaster.crypto import encrypted_fields
from push.models import PushConfig
from push.services.config import (
    push_config_rotate_webhook_secret,
    push_config_set_fcm_service_account,
)
from tests.factories import enable_push, enroll, fcm_token, make_app, make_user, register
from tests.push.subscriptions import browser_subscription

pytestmark = pytest.mark.django_db


def _raw_dump() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT token, token_hmac FROM push_device")
        devices = cursor.fetchall()
        cursor.execute(
            "SELECT webhook_secret, webhook_secret_previous, vapid_private_key FROM push_pushconfig"
        )
        configs = cursor.fetchall()
    return repr(devices + configs)


@pytest.fixture
def stored():
    app = make_app()[0]
    config = enable_push(app)
    account = new_service_account("rotation-test", "https://oauth2.googleapis.com/token")
    push_config_set_fcm_service_account(app=app, actor=None, service_account=json.dumps(account))
    push_config_rotate_webhook_secret(app=app, actor=None)  # the replaced secret is kept a while
    user = make_user()
    enroll(app, user)
    token, subscription = fcm_token("plain"), browser_subscription()
    register(user, app, token)
    register(user, app, subscription, "web")
    return token, subscription, PushConfig.objects.get(pk=config.pk)


@pytest.mark.parametrize(
    "secret_of",
    [
        lambda token, subscription, config: token,
        lambda token, subscription, config: subscription["endpoint"],
        lambda token, subscription, config: subscription["keys"]["p256dh"],
        lambda token, subscription, config: subscription["keys"]["auth"],
        lambda token, subscription, config: config.webhook_secret,
        lambda token, subscription, config: config.webhook_secret_previous,
        lambda token, subscription, config: "PRIVATE KEY",
    ],
    ids=[
        "fcm_token",
        "endpoint",
        "p256dh",
        "auth",
        "webhook_secret",
        "webhook_secret_previous",
        "service_account_key",
    ],
)
def test_no_plaintext_secret_in_the_raw_tables(stored, secret_of):
    secret = secret_of(*stored)
    dump = _raw_dump()
    assert secret not in dump


def _plaintexts() -> dict[tuple[str, str, object], str]:
    """Every non-empty encrypted value of every model, read through the current keys."""
    values = {}
    for model, name in encrypted_fields():
        for pk, value in model.objects.exclude(**{name: ""}).values_list("pk", name):
            values[(model._meta.label, name, pk)] = value
    return values


def _ciphertexts() -> dict[tuple[str, str, object], str]:
    """The same values as stored: the raw column, not decrypted."""
    values = {}
    for model, name in encrypted_fields():
        column = model._meta.get_field(name).column
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {model._meta.pk.column}, {column} FROM {model._meta.db_table}"  # noqa: S608
            )
            for pk, value in cursor.fetchall():
                if value:
                    values[(model._meta.label, name, model._meta.pk.to_python(pk))] = value
    return values


def test_rotation_reencrypts_every_row_of_every_encrypted_field_and_the_old_key_can_go(
    stored, settings
):
    fields = {(model._meta.label, name) for model, name in encrypted_fields()}
    before = _plaintexts()
    # Every encrypted field has a row here, so one added later is covered or this fails.
    assert {(label, name) for label, name, _ in before} == fields
    old = settings.TOKEN_ENCRYPTION_KEYS[0]
    new = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_keys", stdout=io.StringIO())

    raw = _ciphertexts()
    assert raw.keys() == before.keys()
    only_new = Fernet(new)
    assert {key: only_new.decrypt(value.encode()).decode() for key, value in raw.items()} == before
    settings.TOKEN_ENCRYPTION_KEYS = [new]  # the old key is dropped: everything still reads
    assert _plaintexts() == before
    settings.TOKEN_ENCRYPTION_KEYS = [old]
    for model, _ in encrypted_fields():
        with pytest.raises(ImproperlyConfigured, match="rotate_encryption_keys"):
            list(model.objects.all())
