"""Shapes of the JSON that Keymaster sends and answers, as TypedDicts (plain dicts at run time)."""

from __future__ import annotations

from typing import Any, TypedDict


class _MessageRequired(TypedDict):
    user_id: str
    title: str
    body: str


class Message(_MessageRequired, total=False):
    """One notification of a `send_batch`: who gets it and what it says."""

    data: dict[str, Any]
    ttl: int
    priority: str
    collapse_key: str
    urgency: str


class Delivery(TypedDict):
    """The state of one notification on one of the user's devices."""

    device_id: str
    platform: str
    status: str
    error: str | None
    attempts: int
    updated_at: str


class _NotificationOptional(TypedDict, total=False):
    priority: str
    collapse_key: str
    completed_at: str | None


class Notification(_NotificationOptional):
    """A sent notification and its per-device deliveries, from `get_notification`."""

    notification_id: str
    app_id: str
    user_id: str
    title: str
    body: str
    data: dict[str, Any] | None
    ttl: int | None
    status: str
    created_at: str
    deliveries: list[Delivery]


class Receipt(TypedDict):
    """A delivery receipt, as POSTed to the app's webhook URL and returned by verify_webhook."""

    notification_id: str
    user_id: str
    device_id: str
    app_id: str
    status: str
    error: str | None
    timestamp: str


class AccessToken(TypedDict):
    """The token endpoint's answer (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str
