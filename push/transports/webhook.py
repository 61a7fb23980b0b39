"""Delivery receipts to an app's webhook: signed as the guide and as Standard Webhooks.

Every receipt carries the guide's ``X-Keymaster-Signature: sha256=<hex HMAC-SHA256 of the raw
body, keyed with the webhook secret>`` and the Standard Webhooks headers (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64>`` over ``id.timestamp.body``, keyed with
the base64-decoded part of the ``whsec_`` secret), so receivers can also reject replays.
See https://www.standardwebhooks.com/ (spec) and https://github.com/standard-webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

import aiohttp

from keymaster.logs import ProviderFilter
from push.outbound import OutboundPolicy, OutboundRefused, guarded_session
from push.transports.base import (
    Outcome,
    OutcomeKind,
    gather_each,
    outcome_for_bug,
    parse_retry_after,
)

logger = logging.getLogger(__name__)
logger.addFilter(ProviderFilter("webhook"))

USER_AGENT = "Keymaster-Webhooks/1.0"

# HTTP status (or class) → outcome. A redirect is not followed (it could point inside our
# network) and is retried like a server error; 410 means "stop sending": the caller turns the
# webhook off.
ERROR_TABLE: dict[str, OutcomeKind] = {
    "2xx": OutcomeKind.DELIVERED,
    "3xx": OutcomeKind.RETRY,
    "http_410": OutcomeKind.FAILED,
    "http_429": OutcomeKind.RETRY,
    "4xx": OutcomeKind.FAILED,
    "5xx": OutcomeKind.RETRY,
    "timeout": OutcomeKind.RETRY,
    "connection_error": OutcomeKind.RETRY,
    "endpoint_refused": OutcomeKind.FAILED,
}


@dataclass(frozen=True)
class WebhookCall:
    """One receipt to POST: the exact body is what gets signed."""

    url: str
    secret: str
    webhook_id: str
    body: bytes
    # Replaced secrets still within their overlap: they sign beside `secret`.
    previous_secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookResult:
    outcome: Outcome
    status_code: int | None
    duration_ms: int


def signature_headers(
    secret: str, webhook_id: str, body: bytes, timestamp: int, previous: tuple[str, ...] = ()
) -> dict[str, str]:
    """Return the signature headers of one receipt.

    During a rotation's overlap `webhook-signature` carries one signature per secret (new
    first), as Standard Webhooks allows; `X-Keymaster-Signature` holds one value, so it stays
    with the replaced secret until the overlap ends: receivers that check only it keep working
    and switch when the old secret stops signing.
    """
    legacy_secret = previous[0] if previous else secret
    legacy = hmac.new(legacy_secret.encode(), body, hashlib.sha256).hexdigest()
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    standard = " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in (secret, *previous)
    )
    return {
        "X-Keymaster-Signature": f"sha256={legacy}",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
    }


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def outcome_for_status(status: int, retry_after: str | None = None) -> Outcome:
    """Map the webhook's HTTP answer to an outcome through ERROR_TABLE."""
    key = f"http_{status}" if f"http_{status}" in ERROR_TABLE else f"{status // 100}xx"
    kind = ERROR_TABLE.get(key, OutcomeKind.FAILED)
    if kind is OutcomeKind.DELIVERED:
        return Outcome.delivered()
    return Outcome(
        kind,
        error=f"http_{status}",
        detail=f"webhook answered {status}",
        retry_after=parse_retry_after(retry_after) if kind is OutcomeKind.RETRY else None,
    )


class WebhookTransport:
    """POSTs receipts over one guarded, pooled session (created inside the running loop)."""

    def __init__(self, *, policy: OutboundPolicy, timeout: float = 10.0, limit: int = 100) -> None:
        self._policy, self._timeout, self._limit = policy, timeout, limit
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(self._policy, timeout=self._timeout, limit=self._limit)
        return self._session

    async def send(self, call: WebhookCall) -> WebhookResult:
        """POST one receipt and say what happened."""
        started = time.monotonic()
        # The guarded session checks each request too, but aiohttp turns some refusable URLs
        # (not http or https) into a connection error before its middleware sees them: that
        # would be retried, not failed. The verdict is remembered per origin, so this is cheap.
        try:
            self._policy.check_url(call.url, resolve=False)
        except OutboundRefused as exc:
            return WebhookResult(_local("endpoint_refused", exc.reason), None, 0)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **signature_headers(
                call.secret, call.webhook_id, call.body, int(time.time()), call.previous_secrets
            ),
        }
        try:
            async with self._client().post(
                call.url, data=call.body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                outcome = outcome_for_status(response.status, response.headers.get("Retry-After"))
                status: int | None = response.status
        except OutboundRefused as exc:
            outcome, status = _local("endpoint_refused", exc.reason), None
        except aiohttp.ClientConnectorError as exc:
            refused = getattr(exc, "os_error", None)
            if isinstance(refused, OutboundRefused):
                outcome = _local("endpoint_refused", refused.reason)
            else:
                outcome = _local("connection_error", type(exc).__name__)
            status = None
        except TimeoutError:
            outcome, status = _local("timeout", f"no answer within {self._timeout:g} s"), None
        except aiohttp.ClientError as exc:
            outcome, status = _local("connection_error", type(exc).__name__), None
        elapsed = int((time.monotonic() - started) * 1000)
        if outcome.kind is not OutcomeKind.DELIVERED:
            logger.info("Webhook: receipt %s: %s", call.webhook_id, outcome.error)
        return WebhookResult(outcome, status, elapsed)

    async def send_many(self, calls: list[WebhookCall]) -> list[WebhookResult]:
        """POST receipts concurrently; results in the same order."""

        def instead(index: int, exc: Exception) -> WebhookResult:
            logger.error("Webhook: unexpected error for %s", calls[index].webhook_id, exc_info=exc)
            return WebhookResult(outcome_for_bug(exc), None, 0)

        return await gather_each((self.send(call) for call in calls), instead)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _local(error: str, detail: str) -> Outcome:
    return Outcome(ERROR_TABLE[error], error=error, detail=detail[:300])
