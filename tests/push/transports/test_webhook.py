"""The webhook transport: its answer table row by row, and the signature headers it sends."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket

import pytest

from push.outbound import OutboundPolicy
from push.transports.base import OutcomeKind
from push.transports.webhook import (
    ERROR_TABLE,
    USER_AGENT,
    WebhookCall,
    WebhookTransport,
    outcome_for_status,
    signature_headers,
)

DELIVERED, RETRY, FAILED = OutcomeKind.DELIVERED, OutcomeKind.RETRY, OutcomeKind.FAILED
# The Standard Webhooks test vector (github.com/standard-webhooks/standard-webhooks).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# (status, ERROR_TABLE row it exercises, kind)
STATUS_ROWS = [
    (200, "2xx", DELIVERED),
    (204, "2xx", DELIVERED),
    (302, "3xx", RETRY),  # a redirect is not followed: retried like a server error
    (400, "4xx", FAILED),
    (404, "4xx", FAILED),
    (410, "http_410", FAILED),  # "stop sending": the delivery wing turns the webhook off
    (429, "http_429", RETRY),
    (500, "5xx", RETRY),
    (503, "5xx", RETRY),
]
# Rows exercised by their own tests below rather than by an HTTP status.
OWN_TESTS = {"timeout", "connection_error", "endpoint_refused"}


def send(call: WebhookCall, policy: OutboundPolicy, **options: float):
    async def run():
        transport = WebhookTransport(policy=policy, **options)
        try:
            return await transport.send(call)
        finally:
            await transport.aclose()

    return asyncio.run(run())


def call_to(url: str) -> WebhookCall:
    return WebhookCall(url=url, secret=VECTOR_SECRET, webhook_id=VECTOR_ID, body=VECTOR_BODY)


def test_every_error_table_row_is_tested():
    assert {row for _, row, _ in STATUS_ROWS} | OWN_TESTS == set(ERROR_TABLE)


@pytest.mark.parametrize(("status", "row", "kind"), STATUS_ROWS)
def test_status_maps_through_its_row(status, row, kind):
    outcome = outcome_for_status(status)

    assert ERROR_TABLE[row] is kind
    assert outcome.kind is kind
    if kind is not DELIVERED:
        assert (outcome.error, outcome.detail) == (f"http_{status}", f"webhook answered {status}")


@pytest.mark.parametrize(("status", "retry_after"), [(503, 30.0), (429, 120.0), (410, None)])
def test_retry_after_is_read_only_for_retried_answers(status, retry_after):
    header = str(int(retry_after)) if retry_after else "30"

    assert outcome_for_status(status, header).retry_after == retry_after


def test_signature_headers_match_the_standard_webhooks_vector():
    headers = signature_headers(VECTOR_SECRET, VECTOR_ID, VECTOR_BODY, VECTOR_TIMESTAMP)

    assert headers["webhook-signature"] == VECTOR_SIGNATURE
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == (VECTOR_ID, "1614265330")


def test_legacy_signature_is_the_hex_hmac_of_the_body_keyed_by_the_whole_secret():
    headers = signature_headers(VECTOR_SECRET, VECTOR_ID, VECTOR_BODY, VECTOR_TIMESTAMP)

    expected = hmac.new(VECTOR_SECRET.encode(), VECTOR_BODY, hashlib.sha256).hexdigest()
    assert headers["X-Keymaster-Signature"] == f"sha256={expected}"


def test_a_receipt_arrives_signed_with_its_exact_body(fake_webhook):
    fake_webhook.reset()

    result = send(call_to(f"{fake_webhook.url}/hooks/push"), OutboundPolicy("127.0.0.1"))

    assert (result.outcome.kind, result.status_code) == (DELIVERED, 200)
    [received] = fake_webhook.received("/hooks/push")
    assert received.body == VECTOR_BODY
    assert received.headers["user-agent"] == USER_AGENT
    timestamp = int(received.headers["webhook-timestamp"])
    expected = signature_headers(VECTOR_SECRET, VECTOR_ID, VECTOR_BODY, timestamp)
    assert received.headers["webhook-signature"] == expected["webhook-signature"]


def test_a_refused_endpoint_fails_without_a_request(fake_webhook):
    fake_webhook.reset()

    result = send(call_to(f"{fake_webhook.url}/hooks/push"), OutboundPolicy(""))

    assert (result.outcome.kind, result.outcome.error) == (FAILED, "endpoint_refused")
    assert result.status_code is None and fake_webhook.received() == []


def test_a_closed_port_is_a_retried_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = send(call_to(f"http://127.0.0.1:{port}/hook"), OutboundPolicy("127.0.0.1"))

    assert (result.outcome.kind, result.outcome.error) == (RETRY, "connection_error")


def test_a_silent_receiver_is_a_retried_timeout(fake_webhook):
    fake_webhook.reset()
    fake_webhook.set_latency(1500)
    try:
        result = send(
            call_to(f"{fake_webhook.url}/hooks/push"), OutboundPolicy("127.0.0.1"), timeout=0.2
        )
    finally:
        fake_webhook.set_latency(0)

    assert (result.outcome.kind, result.outcome.error) == (RETRY, "timeout")
