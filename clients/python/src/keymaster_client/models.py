"""What Keymaster answers, as frozen dataclasses; what it is sent, as TypedDicts.

Results (`Notification`, `Delivery`, `Broadcast`, `Device`, ...) are parsed from the JSON once,
in `from_json`, with timestamps as timezone-aware `datetime`s. Both clients return the same
types. `Message` (an item of `send_batch`) and `Receipt` (a verified webhook body) stay dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypedDict


class UnexpectedAnswer(ValueError):
    """The server's JSON lacks a field or has one of the wrong type (turned into a
    KeymasterError with code `unexpected_response` by the clients)."""


class _MessageRequired(TypedDict):
    user_id: str
    title: str
    body: str


class Message(_MessageRequired, total=False):
    """One notification of a `send_batch`: who gets it and what it says.

    `send_at` is an RFC 3339 time with an offset (or pass a timezone-aware `datetime`).
    """

    data: dict[str, Any]
    ttl: int
    priority: str
    collapse_key: str
    urgency: str
    send_at: str | datetime


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


@dataclass(frozen=True)
class Delivery:
    """The state of one notification on one of the user's devices."""

    device_id: str
    platform: str
    status: str
    error: str | None
    attempts: int
    updated_at: datetime

    @classmethod
    def from_json(cls, raw: Any) -> Delivery:
        obj = _object(raw, "delivery")
        return cls(
            device_id=_str(obj, "device_id"),
            platform=_str(obj, "platform"),
            status=_str(obj, "status"),
            error=_opt_str(obj, "error"),
            attempts=_int(obj, "attempts"),
            updated_at=_time(obj, "updated_at"),
        )


@dataclass(frozen=True)
class Notification:
    """A notification and its per-device deliveries, from `get_notification`.

    `status` is `scheduled` (with `send_at`), `queued`, `delivered`, `failed`, `canceled`,
    `muted`, ...; `broadcast_id` is set when a broadcast created it.
    """

    notification_id: str
    app_id: str
    user_id: str
    title: str
    body: str
    data: dict[str, str] | None
    ttl: int | None
    status: str
    created_at: datetime
    deliveries: tuple[Delivery, ...]
    priority: str | None = None
    collapse_key: str | None = None
    completed_at: datetime | None = None
    send_at: datetime | None = None
    broadcast_id: str | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Notification:
        obj = _object(raw, "notification")
        data = obj.get("data")
        deliveries = _list(obj, "deliveries", [])
        return cls(
            notification_id=_str(obj, "notification_id"),
            app_id=_str(obj, "app_id"),
            user_id=_str(obj, "user_id"),
            title=_str(obj, "title"),
            body=_str(obj, "body"),
            data={str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None,
            ttl=_opt_int(obj, "ttl"),
            status=_str(obj, "status"),
            created_at=_time(obj, "created_at"),
            deliveries=tuple(Delivery.from_json(item) for item in deliveries),
            priority=_opt_str(obj, "priority"),
            collapse_key=_opt_str(obj, "collapse_key") or None,
            completed_at=_opt_time(obj, "completed_at"),
            send_at=_opt_time(obj, "send_at"),
            broadcast_id=_opt_str(obj, "broadcast_id"),
        )


@dataclass(frozen=True)
class Cancellation:
    """The answer to `cancel_notification`: the notification is `canceled`."""

    notification_id: str
    status: str

    @classmethod
    def from_json(cls, raw: Any) -> Cancellation:
        obj = _object(raw, "cancellation")
        return cls(notification_id=_str(obj, "notification_id"), status=_str(obj, "status"))


@dataclass(frozen=True)
class BroadcastAccepted:
    """The answer to `broadcast`: its id (None for a dry run) and how many users it reaches."""

    broadcast_id: str | None
    recipients: int

    @classmethod
    def from_json(cls, raw: Any) -> BroadcastAccepted:
        obj = _object(raw, "broadcast")
        return cls(broadcast_id=_opt_str(obj, "broadcast_id"), recipients=_int(obj, "recipients"))


@dataclass(frozen=True)
class BroadcastCounts:
    """How many of a broadcast's notifications are in each state."""

    scheduled: int = 0
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    canceled: int = 0
    muted: int = 0

    @classmethod
    def from_json(cls, raw: Any) -> BroadcastCounts:
        obj = _object(raw, "counts")
        return cls(**{name: _opt_int(obj, name) or 0 for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Broadcast:
    """A broadcast and the states of its notifications, from `get_broadcast`."""

    broadcast_id: str
    status: str
    recipients: int
    created_at: datetime
    send_at: datetime | None
    counts: BroadcastCounts

    @classmethod
    def from_json(cls, raw: Any) -> Broadcast:
        obj = _object(raw, "broadcast")
        return cls(
            broadcast_id=_str(obj, "broadcast_id"),
            status=_str(obj, "status"),
            recipients=_int(obj, "recipients"),
            created_at=_time(obj, "created_at"),
            send_at=_opt_time(obj, "send_at"),
            counts=BroadcastCounts.from_json(obj.get("counts", {})),
        )


@dataclass(frozen=True)
class Topic:
    """A topic of the app and its member count."""

    topic: str
    members: int

    @classmethod
    def from_json(cls, raw: Any) -> Topic:
        obj = _object(raw, "topic")
        return cls(topic=_str(obj, "topic"), members=_int(obj, "members"))


@dataclass(frozen=True)
class Page:
    """Where a page sits in a listing: `total` items in all, this page from `offset`."""

    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        """The offset of the next page, or None on the last one."""
        following = self.offset + self.limit
        return following if following < self.total else None


@dataclass(frozen=True)
class TopicMembers:
    """One page of a topic's members (user ids)."""

    topic: str
    user_ids: tuple[str, ...]
    page: Page

    @classmethod
    def from_json(cls, raw: Any, topic: str) -> TopicMembers:
        obj = _object(raw, "topic members")
        # The server answers {"topic", "user_ids": [...], "members": N, "limit", "offset"}:
        # `members` is the topic's member count, as in the answer to a membership change.
        user_ids = _list(obj, "user_ids")
        return cls(
            topic=_opt_str(obj, "topic") or topic,
            user_ids=tuple(str(member) for member in user_ids),
            page=_page(obj, len(user_ids), total="members"),
        )


@dataclass(frozen=True)
class Device:
    """One registered device of an app's user (never its push token)."""

    device_id: str
    user_id: str
    platform: str
    label: str
    created_at: datetime
    last_seen_at: datetime | None

    @classmethod
    def from_json(cls, raw: Any) -> Device:
        obj = _object(raw, "device")
        return cls(
            device_id=_str(obj, "device_id"),
            user_id=_str(obj, "user_id"),
            platform=_str(obj, "platform"),
            label=_opt_str(obj, "label") or "",
            created_at=_time(obj, "created_at"),
            last_seen_at=_opt_time(obj, "last_seen_at"),
        )


@dataclass(frozen=True)
class DevicePage:
    """One page of an app's devices, from `list_devices`."""

    devices: tuple[Device, ...]
    page: Page

    @classmethod
    def from_json(cls, raw: Any) -> DevicePage:
        obj = _object(raw, "device list")
        devices = _list(obj, "devices")
        return cls(
            devices=tuple(Device.from_json(item) for item in devices),
            page=_page(obj, len(devices)),
        )


def parse_time(value: str) -> datetime:
    """Read an RFC 3339 timestamp (`Z` or an offset) into an aware datetime."""
    text = value.strip()
    if text.endswith(("Z", "z")):  # fromisoformat reads "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UnexpectedAnswer(f"{value!r} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _page(obj: Mapping[str, Any], count: int, *, total: str = "total") -> Page:
    """Read a listing's paging fields; `total` names the field holding the item count."""
    return Page(
        total=_int(obj, total),
        limit=_opt_int(obj, "limit") or count,
        offset=_opt_int(obj, "offset") or 0,
    )


def _object(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise UnexpectedAnswer(f"expected a {what} object")
    return raw


def _list(obj: Mapping[str, Any], name: str, default: list[Any] | None = None) -> list[Any]:
    value = obj.get(name, default)
    if not isinstance(value, list):
        raise UnexpectedAnswer(f"{name!r} is not a list")
    return value


def _str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise UnexpectedAnswer(f"{name!r} is missing or not a string")
    return value


def _opt_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) else None


def _int(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise UnexpectedAnswer(f"{name!r} is missing or not an integer")
    return value


def _opt_int(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(obj: Mapping[str, Any], name: str) -> datetime:
    return parse_time(_str(obj, name))


def _opt_time(obj: Mapping[str, Any], name: str) -> datetime | None:
    value = obj.get(name)
    return parse_time(value) if isinstance(value, str) else None
