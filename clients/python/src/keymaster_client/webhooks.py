"""Verify the delivery receipts that Keymaster POSTs to an app's webhook URL."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence

from keymaster_client.errors import WebhookVerificationError
from keymaster_client.models import Receipt

__all__ = ["verify_webhook"]

KEYMASTER_SIGNATURE_HEADER = "x-keymaster-signature"
STANDARD_WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SECRET_PREFIX = "whsec_"


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: int = 300,
    now: float | None = None,
    accept_keymaster_signature_alone: bool = False,
) -> Receipt:
    """Check a receipt's signatures and return the receipt, or raise WebhookVerificationError.

    `body` must be the raw request body, exactly as received: re-serialized JSON will not
    match. `headers` are looked up case-insensitively. `secret` is the app's webhook secret
    (`whsec_...`), or several (during a rotation: any one may match).

    The Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
    are required and verified as that spec says, which also rejects receipts older (or newer)
    than `tolerance` seconds: replays. With `accept_keymaster_signature_alone`, a receipt that
    carries none of them is accepted on the guide's `X-Keymaster-Signature: sha256=<hex>` (an
    HMAC-SHA256 of the body keyed with the whole secret string), which has no timestamp: a
    captured receipt can then be replayed at any time.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise WebhookVerificationError("no webhook secret given")
    lowered = {name.lower(): value for name, value in headers.items()}
    if any(name in lowered for name in STANDARD_WEBHOOK_HEADERS):
        _verify_standard_webhook(body, lowered, secrets, tolerance=tolerance, now=now)
    elif accept_keymaster_signature_alone:
        _verify_keymaster_signature(body, lowered.get(KEYMASTER_SIGNATURE_HEADER), secrets)
    else:
        raise WebhookVerificationError(
            "missing Standard Webhooks headers (webhook-id, -timestamp, -signature); pass "
            "accept_keymaster_signature_alone=True to accept X-Keymaster-Signature without them"
        )
    try:
        receipt = json.loads(body)
    except ValueError as exc:
        raise WebhookVerificationError("body is not valid JSON") from exc
    if not isinstance(receipt, dict):
        raise WebhookVerificationError("body is not a JSON object")
    return receipt  # type: ignore[return-value]


def _verify_keymaster_signature(body: bytes, header: str | None, secrets: list[str]) -> None:
    if not header:
        raise WebhookVerificationError("missing X-Keymaster-Signature header")
    scheme, _, received = header.strip().partition("=")
    if scheme != "sha256" or not received:
        raise WebhookVerificationError("X-Keymaster-Signature is not of the form sha256=<hex>")
    received_bytes = received.lower().encode("utf-8", "replace")
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        # Compared as bytes: compare_digest refuses str with non-ASCII characters.
        if hmac.compare_digest(expected.encode(), received_bytes):
            return
    raise WebhookVerificationError("X-Keymaster-Signature does not match the body")


def _verify_standard_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secrets: list[str],
    *,
    tolerance: int,
    now: float | None,
) -> None:
    """Verify per https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md"""
    msg_id, timestamp, signatures = (headers.get(name, "") for name in STANDARD_WEBHOOK_HEADERS)
    if not (msg_id and timestamp and signatures):
        raise WebhookVerificationError(
            "incomplete Standard Webhooks headers: need webhook-id, -timestamp and -signature"
        )
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if sent_at < current - tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if sent_at > current + tolerance:
        raise WebhookVerificationError("webhook-timestamp is in the future")

    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = [
        hmac.new(_standard_webhook_key(secret), signed, hashlib.sha256).digest()
        for secret in secrets
    ]
    # Several space-separated signatures are allowed, so senders can rotate secrets.
    for versioned in signatures.split():
        version, _, encoded = versioned.partition(",")
        if version != "v1":
            continue
        try:
            received = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if any(hmac.compare_digest(digest, received) for digest in expected):
            return
    raise WebhookVerificationError("no webhook-signature matches the body")


def _standard_webhook_key(secret: str) -> bytes:
    """Return the HMAC key: the base64 after `whsec_`, as the standardwebhooks library reads it."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        # Padding is added because some secrets are unpadded; b64decode ignores any excess.
        key = base64.b64decode(encoded + "==")
    except binascii.Error as exc:
        raise WebhookVerificationError("webhook secret is not base64 after 'whsec_'") from exc
    if not key:
        raise WebhookVerificationError("webhook secret is empty")
    return key
