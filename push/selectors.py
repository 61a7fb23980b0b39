"""Reads of the push app: device lists, counts, and a user's devices across apps."""

from __future__ import annotations

import functools
import uuid
from itertools import groupby
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from accounts.models import App, User
from push.models import Device, PushConfig

# What a send reads of its app's push config: never its secrets.
_SEND_CONFIG = ("enabled", "daily_quota", "track_opens")  # track_opens: the size check


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


@functools.cache
def _app_for_send_sql() -> str:
    columns = ", ".join(f"c.{name} AS push_{name}" for name in _SEND_CONFIG)
    # Table names are ours and every value is a parameter.
    return (
        f"SELECT a.*, {columns} FROM {App._meta.db_table} a"  # noqa: S608
        f" LEFT JOIN {PushConfig._meta.db_table} c ON c.app_id = a.app_id WHERE a.app_id = %s"
    )


def app_for_send(app_id: Any) -> App:
    """The app a client token names, with what a send reads of its push config, in one query.

    SQL written once: the ORM spent 0.24 ms of CPU building and compiling this select_related
    on every send (bench/README.md, item 18). The config, when the app has one, holds only
    `enabled`, `daily_quota` and `track_opens` (other fields are deferred). Raises
    App.DoesNotExist, or ValueError for an id that is not a UUID.
    """
    pk = App._meta.pk.get_db_prep_value(uuid.UUID(str(app_id)), connection)
    app = next(iter(App.objects.raw(_app_for_send_sql(), [pk])), None)
    if app is None:
        raise App.DoesNotExist(f"No app {app_id}.")
    if app.push_enabled is not None:  # a LEFT JOIN that found the app's config
        values = [
            PushConfig._meta.get_field(name).to_python(getattr(app, f"push_{name}"))
            for name in _SEND_CONFIG
        ]
        app.push_config = PushConfig.from_db(
            app._state.db, ["app_id", *_SEND_CONFIG], [app.pk, *values]
        )
    return app
