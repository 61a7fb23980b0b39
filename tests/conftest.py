"""Fixtures shared by the suite: the local provider fakes, wired into the settings."""

from __future__ import annotations

import json

import pytest

from fakes.fcm import FakeFcm
from fakes.webhook import WebhookFake
from fakes.webpush import WebPushFake
from push.delivery.runtime import runtime_reset


@pytest.fixture(scope="session")
def fake_fcm():
    fake = FakeFcm()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def fake_webpush():
    with WebPushFake() as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_webhook():
    with WebhookFake() as fake:
        yield fake


@pytest.fixture
def providers(settings, tmp_path, fake_fcm, fake_webpush, fake_webhook):
    """Point Keymaster at the fakes: FCM + OAuth, Web Push services, and webhooks on loopback."""
    account = tmp_path / "fcm-service-account.json"
    account.write_text(json.dumps(fake_fcm.service_account("demo-project")))
    settings.FCM_CREDENTIALS_FILE = str(account)
    settings.FCM_API_URL = fake_fcm.url
    settings.OUTBOUND_ALLOWED_HOSTS = "127.0.0.1"
    settings.PUSH_SEND_TIMEOUT = 2.0
    for fake in (fake_fcm, fake_webpush, fake_webhook):
        fake.reset()
    runtime_reset()
    yield {"fcm": fake_fcm, "webpush": fake_webpush, "webhook": fake_webhook}
    runtime_reset()
