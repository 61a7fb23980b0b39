"""What providers accept, checked when a send is accepted (and in a dry run), not later.

A message too large for a provider fails on every device of that provider, after it was
accepted and counted; so each notification is measured as each provider it will go to
measures it: the encrypted Web Push message (RFC 8030: push services accept 4,096 bytes) for a
user with a browser, FCM's 4,096-byte payload for a user with a phone. Only the providers the
target user actually has devices with count; for a broadcast, every provider of its platforms.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from keymaster.errors import KeymasterError
from push.models import Platform, Transport
from push.open_tokens import OPEN_TOKEN_LENGTH
from push.transports import fcm, webpush
from push.transports.base import PushMessage

# Stand-ins of the same length as the real values, which do not exist yet.
_SOME_ID = str(uuid.UUID(int=0))
_SOME_OPEN_TOKEN = "x" * OPEN_TOKEN_LENGTH
_PROVIDERS = {Transport.WEBPUSH: "Web Push (encrypted)", Transport.FCM: "FCM"}
# Who carries each platform's messages: a browser subscribes with Web Push or through Firebase.
_TRANSPORTS_OF_PLATFORM = {
    Platform.WEB: {Transport.WEBPUSH, Transport.FCM},
    Platform.IOS: {Transport.FCM},
    Platform.ANDROID: {Transport.FCM},
}


class PayloadTooLarge(KeymasterError):
    code = "payload_too_large"


def _sizes(message: PushMessage, transport: str) -> tuple[int, int]:
    if transport == Transport.WEBPUSH:
        return webpush.encrypted_size(message), webpush.MAX_BODY
    return fcm.payload_size(message), fcm.MAX_PAYLOAD


def payload_check(
    drafts: Iterable[object],
    transports_of: Iterable[set[str]],
    *,
    track_opens: bool,
    field_prefix: str = "",
) -> None:
    """Raise 400 payload_too_large for the first draft too large for one of its providers.

    `transports_of`: for each draft, the transports of its user's devices. `field_prefix`
    names the draft in the request (``notifications[{index}].``), formatted with its index.
    """
    for index, (draft, transports) in enumerate(zip(drafts, transports_of, strict=True)):
        message = PushMessage(
            notification_id=_SOME_ID,
            title=draft.title,
            body=draft.body,
            data=draft.data,
            open_token=_SOME_OPEN_TOKEN if track_opens else None,
        )
        for transport in sorted(transports):
            size, limit = _sizes(message, transport)
            if size > limit:
                raise _too_large(draft, field_prefix.format(index=index), transport, size, limit)


def _too_large(
    draft: object, prefix: str, transport: str, size: int, limit: int
) -> PayloadTooLarge:
    provider = _PROVIDERS[transport]
    names = [name for name in ("title", "body", "data") if getattr(draft, name)]
    message = (
        f"The notification is {size:,} bytes for {provider}; the limit is {limit:,}. "
        f"Shorten {', '.join(names)} by {size - limit:,} bytes."
    )
    return PayloadTooLarge(
        message,
        fields={f"{prefix}{name}": [message] for name in names},
        size=size,
        limit=limit,
        provider=transport,
    )


def transports_of_platforms(platforms: Iterable[str]) -> set[str]:
    """The transports that may carry messages to `platforms` (every one when none is named)."""
    named = list(platforms) or list(Platform)
    return set().union(*(_TRANSPORTS_OF_PLATFORM[Platform(p)] for p in named))
