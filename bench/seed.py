"""Seeding the benchmark database quickly: apps, enrolled users and their devices.

Registration is not what is measured, so users, enrollments and devices are bulk-inserted
through the ORM (tokens still encrypted at rest and HMAC-indexed exactly as `device_register`
stores them). Web Push subscriptions are made at the fake, restricted to the app's VAPID key.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from django.db import connection, transaction

from accounts.models import App, Enrollment, User
from accounts.services import app_create
from accounts.tokens import client_token_issue
from bench.stack import Fakes
from push.models import Device, Platform, PushConfig, Transport
from push.services.config import push_config_update
from push.services.devices import device_token_hmac


@dataclass
class SeededApp:
    """One benchmark app: its users and, per user, its FCM token and Web Push subscription."""

    app: App
    token: str  # client access token with push:send
    webhook_secret: str
    user_ids: list[str]
    fcm_token_of: dict[str, str] = field(default_factory=dict)  # user -> token
    subscription_of: dict[str, str] = field(default_factory=dict)  # user -> fake sub id

    @property
    def user_of_fcm_token(self) -> dict[str, str]:
        return {token: user for user, token in self.fcm_token_of.items()}

    @property
    def user_of_subscription(self) -> dict[str, str]:
        return {sub: user for user, sub in self.subscription_of.items()}


def seed_app(
    fakes: Fakes, name: str, users: int, *, fcm: bool = True, webpush: bool = True
) -> SeededApp:
    """Create an app with push on, its webhook at the fake, `users` users and their devices."""
    app, _secret = app_create(name=name, admin=None)
    push_config_update(app=app, actor=None, enabled=True, daily_quota=2_000_000_000)
    config = PushConfig.objects.get(app=app)
    # Set directly: the fake listens on plain http, which the API rightly refuses.
    config.webhook_url = f"{fakes.webhook}/hooks/{name}"
    config.save(update_fields=["webhook_url"])
    stamp = uuid.uuid4().hex[:8]
    people = [
        User(id=uuid.uuid4(), email=f"{name}-{stamp}-{n}@bench.invalid", password="!")
        for n in range(users)
    ]
    seeded = SeededApp(
        app=app,
        token=client_token_issue(app, ["push:send"])["access_token"],
        webhook_secret=config.webhook_secret,
        user_ids=[str(u.id) for u in people],
    )
    subscriptions = _subscriptions(fakes, config.vapid_public_key, users) if webpush else []
    devices = []
    for n, user in enumerate(people):
        if fcm:
            token = f"bench-{stamp}-{n:07d}-" + "f" * 100
            seeded.fcm_token_of[str(user.id)] = token
            devices.append(_device(app, user, Platform.ANDROID, Transport.FCM, token))
        if webpush:
            sub = subscriptions[n]
            seeded.subscription_of[str(user.id)] = sub["endpoint"].rsplit("/", 1)[-1]
            text = json.dumps({"endpoint": sub["endpoint"], "keys": sub["keys"]})
            devices.append(_device(app, user, Platform.WEB, Transport.WEBPUSH, text))
    with transaction.atomic():
        User.objects.bulk_create(people, batch_size=2000)
        Enrollment.objects.bulk_create(
            [Enrollment(app=app, user=u) for u in people], batch_size=2000
        )
        Device.objects.bulk_create(devices, batch_size=2000)
    if connection.vendor == "postgresql":
        # As after any bulk load: the planner's statistics must know these rows are here.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE accounts_user, accounts_enrollment, push_device")
    return seeded


def _device(app: App, user: User, platform: str, transport: str, token: str) -> Device:
    return Device(
        app=app,
        user=user,
        platform=platform,
        transport=transport,
        token=token,
        token_hmac=device_token_hmac(transport, token),
    )


def _subscriptions(fakes: Fakes, application_server_key: str, count: int) -> list[dict]:
    subs: list[dict] = []
    while len(subs) < count:
        batch = min(5000, count - len(subs))
        body = {"count": batch, "applicationServerKey": application_server_key}
        subs += fakes.control("webpush", "subscriptions/bulk", body)["subscriptions"]
    return subs
