"""Rotating TOKEN_LOOKUP_KEY: tokens stay found during the rotation and after the command."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from push.models import Device
from push.services.devices import device_register, device_token_hmac
from tests.factories import enable_push, enroll, fcm_token, make_app, make_user, register
from tests.push.subscriptions import browser_subscription

pytestmark = pytest.mark.django_db

OLD, NEW = "old-lookup-key", "new-lookup-key"


@pytest.fixture
def world(settings):
    settings.TOKEN_LOOKUP_KEY, settings.TOKEN_LOOKUP_OLD_KEYS = OLD, []
    app = make_app()[0]
    enable_push(app)
    user = make_user()
    enroll(app, user)
    tokens = [(fcm_token(n), "android") for n in range(3)] + [(browser_subscription(), "web")]
    for token, platform in tokens:
        register(user, app, token, platform)
    return app, user, tokens


def _again(app, user, token, platform) -> bool:
    _, created = device_register(user=user, app_id=app.app_id, platform=platform, push_token=token)
    return created


def test_during_rotation_a_token_stored_under_the_old_key_is_found(world, settings):
    app, user, tokens = world
    settings.TOKEN_LOOKUP_KEY, settings.TOKEN_LOOKUP_OLD_KEYS = NEW, [OLD]
    assert [_again(app, user, token, platform) for token, platform in tokens] == [False] * 4
    assert Device.objects.count() == 4
    assert {d.token_hmac for d in Device.objects.all()} == {
        device_token_hmac(d.transport, d.token, NEW) for d in Device.objects.all()
    }


def test_the_command_recomputes_every_lookup_hmac_and_the_old_key_can_go(world, settings):
    app, user, tokens = world
    settings.TOKEN_LOOKUP_KEY, settings.TOKEN_LOOKUP_OLD_KEYS = NEW, [OLD]
    output = io.StringIO()
    call_command("rotate_encryption_keys", stdout=output)
    assert "push.Device.token_hmac: 4 recomputed" in output.getvalue()
    for device in Device.objects.all():
        assert device.token_hmac == device_token_hmac(device.transport, device.token, NEW)
    settings.TOKEN_LOOKUP_OLD_KEYS = []  # the old key is dropped: every token is still found
    assert [_again(app, user, token, platform) for token, platform in tokens] == [False] * 4
    assert Device.objects.count() == 4


def test_a_token_registered_twice_meanwhile_ends_as_one_device(world, settings):
    app, user, tokens = world
    token, platform = tokens[0]
    settings.TOKEN_LOOKUP_KEY = NEW  # rotated without listing the old key: a duplicate appears
    assert _again(app, user, token, platform) is True
    settings.TOKEN_LOOKUP_OLD_KEYS = [OLD]
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    assert Device.objects.count() == 4
