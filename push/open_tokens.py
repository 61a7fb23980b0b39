"""Open tokens: the per-delivery token a Web Push payload carries when its app tracks opens.

A token is the delivery's id and an HMAC of it (keyed by SECRET_KEY), base64url: unguessable
(128-bit MAC), it names exactly one delivery and needs nothing stored. Single use is the
delivery's `opened_at`, set once (push.services.opens). Every token has the same length, so the
size check at acceptance (push.services.limits) counts it before the delivery exists.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac

from django.utils.crypto import salted_hmac

from push.transports.base import PushMessage

_ID_BYTES, _MAC_BYTES = 8, 16
OPEN_TOKEN_LENGTH = 32  # base64url of 24 bytes, no padding
_SALT = "keymaster.push.open-token"


def _mac(raw_id: bytes) -> bytes:
    return salted_hmac(_SALT, raw_id, algorithm="sha256").digest()[:_MAC_BYTES]


def open_token_for(delivery_id: int) -> str:
    """Return the open token of one delivery."""
    raw_id = delivery_id.to_bytes(_ID_BYTES, "big")
    return base64.urlsafe_b64encode(raw_id + _mac(raw_id)).rstrip(b"=").decode("ascii")


def open_token_read(token: object) -> int | None:
    """Return the delivery id a token names, or None for anything that is not a valid token."""
    if not isinstance(token, str) or len(token) != OPEN_TOKEN_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    raw_id, mac = raw[:_ID_BYTES], raw[_ID_BYTES:]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(raw_id)):
        return None
    return int.from_bytes(raw_id, "big")


def with_open_token(message: PushMessage, delivery_id: int, track_opens: bool) -> PushMessage:
    """Return `message` carrying its delivery's open token when the app tracks opens."""
    if not track_opens:
        return message
    return dataclasses.replace(message, open_token=open_token_for(delivery_id))
