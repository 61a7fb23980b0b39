"""Small factories for the tests: users, apps, enrollments and the tokens of each kind."""

from __future__ import annotations

import itertools

from rest_framework.test import APIClient

from accounts.models import App, User
from accounts.services import app_admin_add, app_create, enrollment_add
from accounts.tokens import client_token_issue, user_tokens_issue

_seq = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_user(*, email: str | None = None, staff: bool = False) -> User:
    email = email or f"user{next(_seq)}@example.com"
    return User.objects.create_user(email, PASSWORD, is_staff=staff)


def make_app(*, name: str | None = None, admin: User | None = None) -> tuple[App, str]:
    return app_create(name=name or f"App {next(_seq)}", admin=admin)


def enroll(app: App, *users: User) -> None:
    for user in users:
        enrollment_add(app=app, user=user)


def make_admin(app: App) -> User:
    user = make_user()
    app_admin_add(app=app, user=user)
    return user


def user_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_tokens_issue(user)['access']}")
    return client


def app_client(app: App, scopes: list[str] | None = None) -> APIClient:
    client = APIClient()
    token = client_token_issue(app, ["push:send"] if scopes is None else scopes)["access_token"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def enable_push(app: App, **fields) -> "PushConfig":  # noqa: F821, UP037
    from push.services.config import push_config_update

    return push_config_update(app=app, actor=None, enabled=True, **fields)


def make_push_app(**config_fields) -> App:
    """An app with push enabled (VAPID key and webhook secret provisioned)."""
    app = make_app()[0]
    enable_push(app, **config_fields)
    return app


def fcm_token(n: int | str = "") -> str:
    return f"fcm-token-{n}-" + "x" * 40


def register(user: User, app: App, token: str | dict | None = None, platform: str = "android"):
    from push.services.devices import device_register

    device, _ = device_register(
        user=user, app_id=app.app_id, platform=platform, push_token=token or fcm_token(next(_seq))
    )
    return device


def fcm_device(app: App, user: User, token: str) -> "Device":  # noqa: F821, UP037
    """An unsaved FCM device holding `token`, stored as registration stores it (many at once)."""
    return _stored_device(app, user, "android", "fcm", token)


def webpush_device(app: App, user: User, subscription: dict) -> "Device":  # noqa: F821, UP037
    """An unsaved Web Push device holding `subscription`, stored as registration stores it."""
    import json

    return _stored_device(app, user, "web", "webpush", json.dumps(subscription))


def _stored_device(app: App, user: User, platform: str, transport: str, token: str) -> "Device":  # noqa: F821, UP037
    from push.models import Device
    from push.services.devices import device_token_hmac

    return Device(
        app=app,
        user=user,
        platform=platform,
        transport=transport,
        token=token,
        token_hmac=device_token_hmac(transport, token),
    )
