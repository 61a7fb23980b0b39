"""Every API call a client token makes, as a `Call`: path, body and answer parser.

Shared by `KeymasterClient` and `AsyncKeymasterClient`, which only run the calls.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from keymaster_client._core import Call, parsed, unexpected
from keymaster_client.errors import KeymasterError, offset_field_paths
from keymaster_client.models import (
    Broadcast,
    BroadcastAccepted,
    Cancellation,
    DevicePage,
    Message,
    Notification,
    Topic,
    TopicMembers,
    UnexpectedAnswer,
)

# The server's PUSH_MAX_BATCH_SIZE default; pass batch_size if yours is configured lower.
DEFAULT_BATCH_SIZE = 500
# The server refuses longer keys; keys derived for chunks must stay within it.
MAX_IDEMPOTENCY_KEY_LENGTH = 255
TOPIC_NAME = re.compile(r"[A-Za-z0-9_.~-]{1,64}")
PLATFORMS = frozenset({"web", "ios", "android"})
DEFAULT_PAGE_SIZE = 100


def send_push(
    user_id: str, *, idempotency_key: str | None, dry_run: bool, **content: Any
) -> Call[str | None]:
    def read(answer: Any) -> str | None:
        return None if dry_run else expect_str(answer, "notification_id")

    return Call(
        "POST",
        "/push/send",
        read,
        json=message_fields(user_id=user_id, dry_run=dry_run, **content),
        idempotency_key=idempotency_key or new_key(),
    )


@dataclass(frozen=True)
class ChunkPlan:
    """A bulk or batch send split into requests: its key, the chunk size, one call a chunk."""

    key: str
    size: int
    calls: list[Call[list[str]]]

    def failed(self, error: KeymasterError, index: int, sent: list[str]) -> None:
        """Let the caller find the failing item in its own list, and resume with the key."""
        offset_field_paths(error, index * self.size)
        error.sent_notification_ids = list(sent)
        error.idempotency_key = self.key


def send_bulk(
    user_ids: Sequence[str],
    *,
    idempotency_key: str | None,
    batch_size: int,
    dry_run: bool,
    **content: Any,
) -> ChunkPlan:
    if isinstance(user_ids, str):
        raise TypeError("user_ids must be a list of ids, not a string")
    common = message_fields(dry_run=dry_run, **content)
    return _chunks(
        "/push/send/bulk", "user_ids", list(user_ids), common, idempotency_key, batch_size, dry_run
    )


def send_batch(
    notifications: Sequence[Message | Mapping[str, Any]],
    *,
    idempotency_key: str | None,
    batch_size: int,
    dry_run: bool,
) -> ChunkPlan:
    items = []
    for notification in notifications:
        item = dict(notification)
        if item.get("send_at") is not None:
            item["send_at"] = rfc3339(item["send_at"])
        items.append(item)
    common = {"dry_run": True} if dry_run else {}
    return _chunks(
        "/push/send/batch", "notifications", items, common, idempotency_key, batch_size, dry_run
    )


def _chunks(
    path: str,
    list_field: str,
    items: list[Any],
    common: dict[str, Any],
    idempotency_key: str | None,
    batch_size: int,
    dry_run: bool,
) -> ChunkPlan:
    """Split a list send into chunks of `batch_size`, each its own request.

    Each chunk gets its own Idempotency-Key derived from the send's (`{key}:{index}`), so
    the same send repeated with the same key replays the chunks already sent.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    key = idempotency_key or new_key()
    chunks = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    calls = [
        Call(
            "POST",
            path,
            _ids_reader(0 if dry_run else len(chunk)),
            json={list_field: chunk, **common},
            idempotency_key=key if len(chunks) == 1 else chunk_key(key, index),
        )
        for index, chunk in enumerate(chunks)
    ]
    return ChunkPlan(key, batch_size, calls)


def get_notification(notification_id: str) -> Call[Notification]:
    return Call(
        "GET", f"/push/notifications/{_segment(notification_id)}", parsed(Notification.from_json)
    )


def cancel_notification(notification_id: str) -> Call[Cancellation]:
    # Cancelling is idempotent on the server (a canceled one answers 200 again): no key needed.
    return Call(
        "POST",
        f"/push/notifications/{_segment(notification_id)}/cancel",
        parsed(Cancellation.from_json),
    )


def unregister_device(device_id: str) -> Call[None]:
    return Call(
        "DELETE", f"/push/devices/{_segment(device_id)}", _nothing, missing_ok_on_retry=True
    )


def list_devices(
    app_id: str, *, platform: str | None, user_id: str | None, limit: int, offset: int
) -> Call[DevicePage]:
    params = {"limit": str(limit), "offset": str(offset)}
    if platform is not None:
        params["platform"] = platform
    if user_id is not None:
        params["user_id"] = user_id
    return Call(
        "GET", f"/push/devices/{_segment(app_id)}", parsed(DevicePage.from_json), params=params
    )


def broadcast(
    *,
    topic: str | None,
    platforms: Collection[str] | None,
    idempotency_key: str | None,
    dry_run: bool,
    **content: Any,
) -> Call[BroadcastAccepted]:
    audience = topic_name(topic) if topic is not None else None
    body = message_fields(topic=audience, dry_run=dry_run, **content)
    if platforms is not None:
        if isinstance(platforms, str) or not set(platforms) <= PLATFORMS:
            raise ValueError(f"platforms must be a list drawn from {sorted(PLATFORMS)}")
        body["platforms"] = sorted(set(platforms))
    return Call(
        "POST",
        "/push/send/broadcast",
        parsed(BroadcastAccepted.from_json),
        json=body,
        idempotency_key=idempotency_key or new_key(),
    )


def get_broadcast(broadcast_id: str) -> Call[Broadcast]:
    return Call("GET", f"/push/broadcasts/{_segment(broadcast_id)}", parsed(Broadcast.from_json))


def cancel_broadcast(broadcast_id: str) -> Call[None]:
    return Call("POST", f"/push/broadcasts/{_segment(broadcast_id)}/cancel", _nothing)


def update_topic_members(topic: str, *, add: Sequence[str], remove: Sequence[str]) -> Call[Topic]:
    if isinstance(add, str) or isinstance(remove, str):
        raise TypeError("add and remove must be lists of user ids, not strings")
    return Call(
        "POST",
        f"/push/topics/{topic_name(topic)}/members",
        parsed(Topic.from_json),
        json={"add": list(add), "remove": list(remove)},
    )


def list_topics() -> Call[list[Topic]]:
    def read(answer: Any) -> list[Topic]:
        topics = answer.get("topics") if isinstance(answer, dict) else None
        if not isinstance(topics, list):
            raise UnexpectedAnswer("'topics' is not a list")
        return [Topic.from_json(item) for item in topics]

    return Call("GET", "/push/topics", parsed(read))


def topic_members(topic: str, *, limit: int, offset: int) -> Call[TopicMembers]:
    name = topic_name(topic)
    return Call(
        "GET",
        f"/push/topics/{name}/members",
        parsed(lambda answer: TopicMembers.from_json(answer, name)),
        params={"limit": str(limit), "offset": str(offset)},
    )


def delete_topic(topic: str) -> Call[None]:
    return Call("DELETE", f"/push/topics/{topic_name(topic)}", _nothing, missing_ok_on_retry=True)


def topic_name(topic: str) -> str:
    """Check a topic name (1-64 of A-Z a-z 0-9 _ . ~ -): all of them are safe in a path."""
    if not isinstance(topic, str) or not TOPIC_NAME.fullmatch(topic):
        raise ValueError(f"invalid topic name {topic!r}: 1-64 characters of A-Z a-z 0-9 _ . ~ -")
    return topic


def message_fields(*, dry_run: bool, **fields: Any) -> dict[str, Any]:
    """Build a request body from the given fields, leaving out those not set."""
    payload = {name: value for name, value in fields.items() if value is not None}
    if "data" in payload:
        payload["data"] = dict(payload["data"])
    if "send_at" in payload:
        payload["send_at"] = rfc3339(payload["send_at"])
    if dry_run:
        payload["dry_run"] = True
    return payload


def rfc3339(value: str | datetime) -> str:
    """Return `send_at` as the RFC 3339 text the server reads; a datetime needs a timezone."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("send_at must be timezone-aware (an RFC 3339 time has an offset)")
        return value.isoformat()
    return value


def new_key() -> str:
    return str(uuid.uuid4())


def chunk_key(key: str, index: int) -> str:
    """Return the Idempotency-Key of chunk `index` of the send keyed `key`."""
    derived = f"{key}:{index}"
    if len(derived) > MAX_IDEMPOTENCY_KEY_LENGTH:
        # Still a function of the caller's key alone, so repeating the send replays it.
        derived = f"{hashlib.sha256(key.encode()).hexdigest()}:{index}"
    return derived


def expect_str(answer: Any, name: str) -> str:
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, str):
        raise unexpected(f"an object with {name!r}")
    return value


def _ids_reader(count: int) -> Callable[[Any], list[str]]:
    def read(answer: Any) -> list[str]:
        ids = answer.get("notification_ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list) or len(ids) != count:
            raise unexpected(f"{count} notification_ids")
        return [str(notification_id) for notification_id in ids]

    return read


def _nothing(answer: Any) -> None:
    return None


def _segment(value: str) -> str:
    return quote(str(value), safe="")
