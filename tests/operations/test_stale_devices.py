"""Stale devices: removed after DEVICE_STALE_DAYS without a new registration, audited per app."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from push.delivery.stale_devices import devices_remove_stale
from push.models import AuditEvent, Device
from push.selectors import devices_going_stale
from tests.factories import enroll, make_push_app, make_user, register

pytestmark = pytest.mark.django_db


def _aged(device: Device, days: int) -> Device:
    Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now() - timedelta(days=days))
    return device


@pytest.fixture
def apps():
    first, second = make_push_app(), make_push_app()
    user = make_user()
    enroll(first, user)
    enroll(second, user)
    return first, second, user


def test_devices_not_registered_again_for_270_days_are_removed_and_audited(apps):
    first, second, user = apps
    stale = [_aged(register(user, first), 300), _aged(register(user, first), 271)]
    stale_second = _aged(register(user, second), 400)
    fresh = _aged(register(user, first), 100)
    removed = devices_remove_stale()
    assert removed == {str(first.app_id): 2, str(second.app_id): 1}
    assert list(Device.objects.values_list("id", flat=True)) == [fresh.id]
    assert not Device.objects.filter(id__in=[d.id for d in [*stale, stale_second]]).exists()
    events = {e.app_id: e for e in AuditEvent.objects.filter(action="devices.stale_removed")}
    assert events[first.app_id].detail == {"count": 2, "days": 270}
    assert events[second.app_id].detail == {"count": 1, "days": 270}
    assert events[first.app_id].actor is None


def test_registering_again_keeps_a_device(apps):
    first, _, user = apps
    device = _aged(register(user, first), 300)
    again = register(user, first, token=Device.objects.get(pk=device.pk).token)
    assert again.id == device.id
    assert devices_remove_stale() == {}
    assert Device.objects.filter(pk=device.pk).exists()


def test_zero_turns_removal_off(apps, settings):
    first, _, user = apps
    _aged(register(user, first), 1000)
    settings.DEVICE_STALE_DAYS = 0
    assert devices_remove_stale() == {}
    assert Device.objects.count() == 1
    assert devices_going_stale(app=first) == 0
    assert not AuditEvent.objects.filter(action="devices.stale_removed").exists()


def test_the_devices_going_within_30_days_are_counted(apps):
    first, second, user = apps
    _aged(register(user, first), 250)  # goes in 20 days
    _aged(register(user, first), 100)
    _aged(register(user, second), 260)
    assert devices_going_stale(app=first) == 1
    assert devices_going_stale(app=second) == 1


def test_the_console_shows_how_many_devices_will_go(apps, client):
    first, _, user = apps
    _aged(register(user, first), 250)
    admin = make_user()
    from accounts.services import app_admin_add

    app_admin_add(app=first, user=admin)
    client.force_login(admin)
    page = client.get(f"/console/apps/{first.app_id}/devices/").content.decode()
    assert "1 device will be removed within 30 days" in page
