"""Reads of the push app: device lists, counts, and a user's devices across apps."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from django.db.models import QuerySet

from accounts.models import App, User
from push.models import Device


def devices_of_app(
    app: App, *, platform: str | None = None, user_id: Any = None
) -> QuerySet[Device]:
    """Return the app's devices, newest seen first, optionally by platform and user."""
    devices = Device.objects.filter(app=app)
    if platform:
        devices = devices.filter(platform=platform)
    if user_id:
        devices = devices.filter(user_id=user_id)
    # `token` is left out: listing devices never needs to decrypt a push token.
    return devices.defer("token").order_by("-last_seen_at", "id")


def device_count(app: App) -> int:
    return Device.objects.filter(app=app).count()


def devices_of_user_by_app(user: User) -> list[dict[str, Any]]:
    """Return the user's devices grouped by app: ``[{app_id, app_name, devices}]``."""
    devices = (
        Device.objects.filter(user=user)
        .select_related("app")
        .defer("token")
        .order_by("app__name", "app_id", "-last_seen_at")
    )
    return [
        {"app_id": app.app_id, "app_name": app.name, "devices": list(group)}
        for app, group in groupby(devices, key=lambda device: device.app)
    ]


def webpush_subscription_count(user: User, app: App) -> int:
    return Device.objects.filter(user=user, app=app, transport="webpush").count()
