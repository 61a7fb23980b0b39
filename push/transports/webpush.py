"""Web Push transport: one encrypted, VAPID-signed POST per browser subscription.

Protocols: RFC 8030 (the push request and its TTL / Urgency / Topic headers,
https://www.rfc-editor.org/rfc/rfc8030), RFC 8291 (aes128gcm message encryption, done by
pywebpush and http_ece, never by hand, https://www.rfc-editor.org/rfc/rfc8291) and RFC 8292
(VAPID, https://www.rfc-editor.org/rfc/rfc8292).

The transport knows the protocol and nothing else: no database, no settings. Every request
goes through `push.outbound.guarded_session`, so a subscription endpoint can never reach an
internal address, and redirects are outcomes, never followed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException
from pywebpush import WebPusher
from yarl import URL

from keymaster.logs import ProviderFilter
from push.outbound import OutboundPolicy, OutboundRefused, guarded_session
from push.transports.base import (
    Outcome,
    OutcomeKind,
    PushMessage,
    gather_each,
    outcome_for_bug,
    parse_retry_after,
)

logger = logging.getLogger(__name__)
logger.addFilter(ProviderFilter("webpush"))

MAX_BODY = 4096  # RFC 8030 section 7.2: the size every push service must accept
# aes128gcm framing (RFC 8188 section 2, RFC 8291 section 4): an 86-byte header (16 salt,
# 4 record size, 1 key-id length, 65 sender key), then one record holding the payload, a
# 1-byte padding delimiter and a 16-byte AEAD tag.
ECE_OVERHEAD = 86 + 1 + 16
MAX_PAYLOAD = MAX_BODY - ECE_OVERHEAD
MAX_JWT_LIFETIME = 24 * 3600  # RFC 8292 section 2: exp no more than 24 hours ahead
MAX_ENDPOINT_LENGTH = 2048
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030 section 5.4 (FCM's webpush.headers too)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

# The one mapping from a push service's answer (or a local refusal) to an outcome. Exact
# statuses first, then the class ("5xx"); anything unlisted is FAILED.
ERROR_TABLE: dict[int | str, OutcomeKind] = {
    200: OutcomeKind.DELIVERED,
    201: OutcomeKind.DELIVERED,  # RFC 8030 section 5: 201 Created is the normal answer
    202: OutcomeKind.DELIVERED,
    # The subscription is gone for good (unsubscribed, expired): the device must be removed.
    404: OutcomeKind.INVALID_TOKEN,
    410: OutcomeKind.INVALID_TOKEN,
    429: OutcomeKind.RETRY,
    "5xx": OutcomeKind.RETRY,
    413: OutcomeKind.FAILED,
    # 400/401/403 mean our request or VAPID key is wrong, not that the subscription is dead.
    400: OutcomeKind.FAILED,
    401: OutcomeKind.FAILED,
    403: OutcomeKind.FAILED,
    "4xx": OutcomeKind.FAILED,
    "3xx": OutcomeKind.FAILED,  # redirects are never followed (SSRF)
    "timeout": OutcomeKind.RETRY,
    "connection_error": OutcomeKind.RETRY,
    "endpoint_refused": OutcomeKind.FAILED,
    "payload_too_large": OutcomeKind.FAILED,
    "invalid_subscription": OutcomeKind.INVALID_TOKEN,
    "vapid_invalid": OutcomeKind.FAILED,
}
# The rows that mean the app's VAPID key is wrong, not the subscription: shown on its config.
MISCONFIGURED = frozenset({"http_401", "http_403", "vapid_invalid"})

_DETAILS: dict[int | str, str] = {
    400: "push service rejected the request as malformed",
    401: "push service rejected the VAPID authorization (check the app's VAPID key)",
    403: "VAPID key does not match the subscription's applicationServerKey",
    404: "subscription not found",
    410: "subscription expired or unsubscribed",
    413: "payload too large for the push service",
    429: "rate limited by the push service",
    "5xx": "push service error",
    "4xx": "push service rejected the request",
    "3xx": "push service redirected; redirects are not followed",
}


def outcome_kind(key: int | str) -> OutcomeKind:
    """Look an HTTP status or local error code up in ERROR_TABLE."""
    if key in ERROR_TABLE:
        return ERROR_TABLE[key]
    if isinstance(key, int):
        return ERROR_TABLE.get(f"{key // 100}xx", OutcomeKind.FAILED)
    return OutcomeKind.FAILED


@dataclass(frozen=True)
class VapidKey:
    """An app's VAPID keypair (RFC 8292) and its contact subject."""

    private_key_pem: str  # PKCS8 PEM
    subject: str  # "mailto:..." or "https://..."

    def __post_init__(self) -> None:
        if not self.subject.startswith(("mailto:", "https://")):
            raise ValueError("subject: must be a mailto: or https: URI")

    @classmethod
    def generate(cls, subject: str) -> VapidKey:
        """Generate a new P-256 keypair."""
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(private_key_pem=pem.decode("ascii"), subject=subject)

    @property
    def public_key_b64url(self) -> str:
        """Return the browser's applicationServerKey: the uncompressed point, base64url."""
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("private_key_pem: not an EC private key")
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _b64url(point)


def build_payload(message: PushMessage) -> bytes:
    """Serialise what the service worker receives (README "Web Push on your own site").

    JSON {notification_id, title, body, data} and, when the app tracks opens, open_token.
    """
    document: dict[str, Any] = {
        "title": message.title,
        "body": message.body,
        "data": message.data,
        "notification_id": message.notification_id,
    }
    if message.open_token:
        document["open_token"] = message.open_token
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encrypted_size(message: PushMessage) -> int:
    """Return the bytes of `message` as sent: its aes128gcm-encrypted payload (<= MAX_BODY)."""
    return len(build_payload(message)) + ECE_OVERHEAD


def topic_for(collapse_key: str) -> str:
    """Return an RFC 8030 Topic (<= 32 base64url chars), hashing keys that are not one."""
    if TOPIC.fullmatch(collapse_key):
        return collapse_key
    return _b64url(hashlib.sha256(collapse_key.encode("utf-8")).digest())[:32]


def urgency_for(message: PushMessage) -> str:
    """Return the RFC 8030 Urgency: the message's own, else from its priority."""
    if message.urgency in URGENCIES:
        return message.urgency
    return "high" if message.priority == "high" else "normal"


class SubscriptionInvalid(ValueError):
    """A malformed PushSubscription: `field` names the part at fault (``keys.p256dh``)."""

    def __init__(self, field: str, reason: str, *, refused: bool = False) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason
        self.refused = refused  # the endpoint is well-formed but not allowed (SSRF guard)


def validate_subscription(
    value: dict[str, Any] | str, policy: OutboundPolicy | None = None
) -> dict[str, Any]:
    """Check a browser PushSubscription (object or JSON) and return it normalised.

    Raises SubscriptionInvalid (a ValueError) naming the offending field (``keys.p256dh``).
    """
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise SubscriptionInvalid("subscription", "not valid JSON") from None
    if not isinstance(value, dict):
        raise SubscriptionInvalid("subscription", "must be a JSON object")
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise SubscriptionInvalid("endpoint", "required")
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise SubscriptionInvalid("endpoint", f"longer than {MAX_ENDPOINT_LENGTH} characters")
    try:
        (policy or OutboundPolicy()).check_url(endpoint, resolve=False)
    except OutboundRefused as exc:
        raise SubscriptionInvalid("endpoint", exc.reason, refused=True) from None
    expiration = value.get("expirationTime")
    if isinstance(expiration, float) and expiration.is_integer():
        expiration = int(expiration)
    if expiration is not None and (not isinstance(expiration, int) or isinstance(expiration, bool)):
        raise SubscriptionInvalid("expirationTime", "must be null or an integer")
    keys = value.get("keys")
    if not isinstance(keys, dict):
        raise SubscriptionInvalid("keys", "required (an object with p256dh and auth)")
    p256dh = _decode_b64("keys.p256dh", keys.get("p256dh"))
    if len(p256dh) != 65 or p256dh[0] != 0x04:
        raise SubscriptionInvalid(
            "keys.p256dh", f"must be a 65-byte uncompressed P-256 point, got {len(p256dh)} bytes"
        )
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise SubscriptionInvalid("keys.p256dh", "not a point on the P-256 curve") from None
    auth = _decode_b64("keys.auth", keys.get("auth"))
    if len(auth) != 16:
        raise SubscriptionInvalid("keys.auth", f"must be 16 bytes, got {len(auth)}")
    return {
        "endpoint": endpoint,
        "expirationTime": expiration,
        "keys": {"p256dh": _b64url(p256dh), "auth": _b64url(auth)},
    }


def _decode_b64(name: str, value: object) -> bytes:
    # Browsers send base64url without padding; some client libraries send standard base64.
    if not isinstance(value, str) or not value.strip():
        raise SubscriptionInvalid(name, "required")
    text = value.strip().rstrip("=").replace("+", "-").replace("/", "_")
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise SubscriptionInvalid(name, "not valid base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SubscriptionInvalid(name, "not valid base64url") from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _origin(endpoint: str) -> str:
    return str(URL(endpoint).origin())


class WebPushTransport:
    """Send Web Push messages over one guarded aiohttp session per event loop."""

    def __init__(
        self,
        *,
        policy: OutboundPolicy,
        timeout: float = 10.0,
        max_in_flight: int = 100,
        jwt_lifetime: int = 12 * 3600,
    ) -> None:
        if not 120 <= jwt_lifetime <= MAX_JWT_LIFETIME:
            raise ValueError("jwt_lifetime: must be between 120 seconds and 24 hours")
        self._policy = policy
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._jwt_lifetime = jwt_lifetime
        # Refresh well before exp so a message queued at a push service never carries a
        # token that expires in flight.
        self._jwt_margin = min(3600, jwt_lifetime // 2)
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signers: dict[str, Vapid02] = {}
        self._jwts: dict[tuple[str, str, str], tuple[str, float]] = {}

    def _client(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        # Built lazily: an aiohttp session belongs to the loop it was created in.
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = guarded_session(
                self._policy, timeout=self._timeout, limit=self._max_in_flight
            )
            self._semaphore = asyncio.Semaphore(self._max_in_flight)
            self._loop = loop
        assert self._semaphore is not None
        return self._session, self._semaphore

    def _authorization(self, vapid: VapidKey, origin: str) -> str:
        # RFC 8292 lets one JWT serve every message to a push service until it expires;
        # signing per message would cost an ECDSA signature per push for nothing.
        key = (vapid.private_key_pem, vapid.subject, origin)
        now = time.time()
        cached = self._jwts.get(key)
        if cached is not None and now < cached[1] - self._jwt_margin:
            return cached[0]
        signer = self._signers.get(vapid.private_key_pem)
        if signer is None:
            signer = Vapid02.from_pem(vapid.private_key_pem.encode("ascii"))
            self._signers[vapid.private_key_pem] = signer
        exp = int(now) + self._jwt_lifetime
        header = signer.sign({"aud": origin, "sub": vapid.subject, "exp": exp})["Authorization"]
        self._jwts[key] = (header, exp)
        return header

    async def send(self, vapid: VapidKey, subscription: dict, message: PushMessage) -> Outcome:
        """Encrypt and send one message to one subscription; never raises for provider errors."""
        if not isinstance(subscription, dict):
            return _local("invalid_subscription", "subscription: must be a JSON object")
        try:
            valid = validate_subscription(subscription, self._policy)
        except SubscriptionInvalid as exc:
            if not exc.refused:
                return _local("invalid_subscription", str(exc))
            logger.warning(
                "WebPush: endpoint refused for notification %s: %s",
                message.notification_id,
                exc.reason,
            )
            return _local("endpoint_refused", exc.reason)
        endpoint = valid["endpoint"]
        payload = build_payload(message)
        if len(payload) > MAX_PAYLOAD:
            return _local(
                "payload_too_large",
                f"encrypted payload would be {len(payload) + ECE_OVERHEAD} bytes; "
                f"push services accept {MAX_BODY}",
            )
        origin = _origin(endpoint)
        try:
            authorization = self._authorization(vapid, origin)
        except (VapidException, ValueError) as exc:
            logger.error("WebPush: cannot sign VAPID JWT for %s: %s", origin, exc)
            return _local("vapid_invalid", "cannot sign the VAPID JWT (check the app's key)")
        session, semaphore = self._client()
        async with semaphore:
            body = WebPusher(valid).encode(payload, content_encoding="aes128gcm")["body"]
            headers = {
                "TTL": str(max(0, int(message.ttl))),
                "Urgency": urgency_for(message),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
                "Authorization": authorization,
            }
            if message.collapse_key:
                headers["Topic"] = topic_for(message.collapse_key)
            return await self._post(session, endpoint, origin, body, headers, message)

    async def _post(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        origin: str,
        body: bytes,
        headers: dict[str, str],
        message: PushMessage,
    ) -> Outcome:
        try:
            async with session.post(
                endpoint, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except OutboundRefused as exc:  # a literal address, refused by the session's guard
            return _local("endpoint_refused", exc.reason)
        except TimeoutError:
            logger.info("WebPush: %s timed out for %s", origin, message.notification_id)
            return _local("timeout", f"no answer from {origin} within {self._timeout:g}s")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OutboundRefused):  # DNS answered a forbidden address
                logger.warning("WebPush: %s refused: %s", origin, exc.os_error.reason)
                return _local("endpoint_refused", exc.os_error.reason)
            return _local("connection_error", f"cannot connect to {origin}: {exc.strerror}")
        except aiohttp.ClientError as exc:
            return _local("connection_error", f"{type(exc).__name__} from {origin}")
        return self._outcome(status, retry_after, origin, message)

    @staticmethod
    def _outcome(
        status: int, retry_after: str | None, origin: str, message: PushMessage
    ) -> Outcome:
        kind = outcome_kind(status)
        if kind is OutcomeKind.DELIVERED:
            logger.debug("WebPush: %s accepted notification %s", origin, message.notification_id)
            return Outcome.delivered()
        detail = _DETAILS.get(status) or _DETAILS.get(f"{status // 100}xx", f"HTTP {status}")
        log = logger.warning if kind is OutcomeKind.FAILED else logger.info
        log(
            "WebPush: %s answered %s for notification %s (%s)",
            origin,
            status,
            message.notification_id,
            kind,
        )
        return Outcome(
            kind,
            error=f"http_{status}",
            detail=detail,
            retry_after=parse_retry_after(retry_after) if kind is OutcomeKind.RETRY else None,
            misconfigured=f"http_{status}" in MISCONFIGURED,
        )

    async def send_many(
        self,
        vapid: VapidKey,
        items: list[tuple[dict, PushMessage]],
        each: Callable[[int, Outcome], None] | None = None,
        admit: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[Outcome]:
        """Send many messages concurrently (bounded by max_in_flight); outcomes in order.

        `each(index, outcome)` is called as each outcome arrives, `admit(index)` awaited before
        each send (`gather_each`).
        """

        def instead(index: int, exc: Exception) -> Outcome:
            logger.error("WebPush: unexpected error", exc_info=exc)
            subscription = items[index][0]
            endpoint = subscription.get("endpoint") if isinstance(subscription, dict) else ""
            return outcome_for_bug(exc, redact=str(endpoint or ""))

        sends = (self.send(vapid, sub, msg) for sub, msg in items)
        return await gather_each(sends, instead, each, admit)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _local(error: str, detail: str) -> Outcome:
    # An outcome decided without (or before) an HTTP answer, still mapped by ERROR_TABLE.
    return Outcome(
        outcome_kind(error), error=error, detail=detail, misconfigured=error in MISCONFIGURED
    )
