"""The FCM transport, over real HTTP against the fake FCM server and its OAuth endpoint."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import time

import pytest
from google.auth import exceptions as auth_exceptions

from fakes.fcm import FakeFcm, new_service_account
from push.transports.base import Outcome, OutcomeKind, PushMessage
from push.transports.fcm import (
    ERROR_TABLE,
    MISCONFIGURED,
    FcmCredential,
    FcmTransport,
    _auth_outcome,
    build_message,
    credential_for,
    outcome_for_response,
    outcome_not_configured,
)

DELIVERED = OutcomeKind.DELIVERED
RETRY = OutcomeKind.RETRY
INVALID_TOKEN = OutcomeKind.INVALID_TOKEN
FAILED = OutcomeKind.FAILED

# A realistic registration token: long enough that "the last 6 characters" is not all of it.
TOKEN = "fGx7c2VhQ3R6:APA91bH-" + "x" * 120 + "Qz9w4K"
MESSAGE = PushMessage(
    notification_id="n-1",
    title="Shift starts soon",
    body="Open GymOps",
    data={"route": "/schedule", "shift": "42"},
    ttl=600,
    priority="high",
    collapse_key="shift-42",
)


@pytest.fixture(scope="module")
def fake():
    with FakeFcm() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(fake):
    fake.reset()


@pytest.fixture(scope="module")
def account(fake):
    return fake.service_account("proj-a")


@pytest.fixture(scope="module")
def credential(account):
    """One credential for the module, as a worker keeps one per service account."""
    return FcmCredential.from_service_account(account)


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def send(url, credential, token=TOKEN, message=MESSAGE, **options):
    async def run():
        transport = FcmTransport(api_url=url, **options)
        try:
            return await transport.send(credential, token, message)
        finally:
            await transport.aclose()

    return asyncio.run(run())


def test_message_arrives_as_built(fake, credential):
    before = int(time.time())

    outcome = send(fake.url, credential)

    assert outcome == Outcome.delivered()
    [sent] = fake.messages
    assert sent["token"] == TOKEN
    assert sent["notification"] == {"title": "Shift starts soon", "body": "Open GymOps"}
    assert sent["data"] == {"route": "/schedule", "shift": "42", "notification_id": "n-1"}
    assert sent["android"] == {"ttl": "600s", "priority": "high", "collapse_key": "shift-42"}
    apns = sent["apns"]["headers"]
    assert before + 600 <= int(apns["apns-expiration"]) <= int(time.time()) + 600
    assert (apns["apns-priority"], apns["apns-collapse-id"]) == ("10", "shift-42")
    assert sent["webpush"]["headers"] == {"TTL": "600", "Urgency": "high", "Topic": "shift-42"}


def test_normal_priority_zero_ttl_message_means_now_or_never(fake, credential):
    message = PushMessage("n-2", "t", "b", ttl=0, priority="normal", urgency="low")

    assert send(fake.url, credential, message=message).kind is DELIVERED

    [sent] = fake.messages
    assert sent["android"] == {"ttl": "0s", "priority": "normal"}
    assert sent["apns"]["headers"] == {"apns-expiration": "0", "apns-priority": "5"}
    assert sent["webpush"]["headers"] == {"TTL": "0", "Urgency": "low"}
    assert sent["data"] == {"notification_id": "n-2"}  # so an app can report the open


def test_collapse_keys_providers_would_reject_are_left_out():
    message = PushMessage("n", "t", "b", collapse_key="not a web push topic! " * 4)

    built = build_message("tok", message)["message"]

    assert built["android"]["collapse_key"] == message.collapse_key
    assert "Topic" not in built["webpush"]["headers"]
    assert "apns-collapse-id" not in built["apns"]["headers"]


def test_invalid_message_fails_without_calling_fcm(fake, credential):
    outcome = send(fake.url, credential, message=PushMessage("n", "t", "b", priority="urgent"))

    assert (outcome.kind, outcome.error) == (FAILED, "invalid_message")
    assert fake.stats()["outcomes"] == {}


def test_send_many_keeps_order_and_fetches_one_access_token(fake, account):
    credential = FcmCredential.from_service_account(account)
    tokens = [f"unregistered-{i}" if i % 10 == 3 else f"device-{i}" for i in range(50)]

    async def run():
        transport = FcmTransport(api_url=fake.url, max_in_flight=10)
        try:
            return await transport.send_many(credential, [(t, MESSAGE) for t in tokens])
        finally:
            await transport.aclose()

    outcomes = asyncio.run(run())

    expected = [INVALID_TOKEN if t.startswith("unregistered-") else DELIVERED for t in tokens]
    assert [o.kind for o in outcomes] == expected
    assert len(fake.messages) == 45
    assert fake.stats()["tokens_issued"] == 1


def test_access_token_is_reused_across_loops_and_transports(fake, account):
    credential = FcmCredential.from_service_account(account)

    for _ in range(3):
        assert send(fake.url, credential).kind is DELIVERED

    assert fake.stats()["tokens_issued"] == 1


def test_revoked_access_token_fails_once_then_is_replaced(fake, account):
    credential = FcmCredential.from_service_account(account)
    send(fake.url, credential)
    fake.expire_access_tokens()

    rejected = send(fake.url, credential)
    retried = send(fake.url, credential)

    assert (rejected.kind, rejected.error) == (FAILED, "UNAUTHENTICATED")
    assert retried.kind is DELIVERED
    assert fake.stats()["tokens_issued"] == 2


def test_max_in_flight_bounds_concurrency(fake, credential):
    fake.set_faults(latency_ms=200)

    async def run(limit):
        fake.reset()
        fake.set_faults(latency_ms=200)
        transport = FcmTransport(api_url=fake.url, max_in_flight=limit)
        await transport.send_many(credential, [(f"d{i}", MESSAGE) for i in range(6)])
        await transport.aclose()
        return fake.stats()["peak_in_flight"]

    # The fake counts the requests it holds at once (each held for 200 ms).
    assert asyncio.run(run(2)) == 2
    assert asyncio.run(run(6)) == 6


def http_date(seconds_from_now):
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


# (scripted FCM answer, ERROR_TABLE row it exercises, kind, error, retry_after)
ROWS = [
    ("UNREGISTERED", "UNREGISTERED", INVALID_TOKEN, "UNREGISTERED", None),
    ("INVALID_ARGUMENT", "INVALID_ARGUMENT:message.token", INVALID_TOKEN, "INVALID_ARGUMENT", None),
    ("MESSAGE_TOO_BIG", "INVALID_ARGUMENT", FAILED, "INVALID_ARGUMENT", None),
    ("SENDER_ID_MISMATCH", "SENDER_ID_MISMATCH", FAILED, "SENDER_ID_MISMATCH", None),
    ("THIRD_PARTY_AUTH_ERROR", "THIRD_PARTY_AUTH_ERROR", FAILED, "THIRD_PARTY_AUTH_ERROR", None),
    ("APNS_AUTH_ERROR", "APNS_AUTH_ERROR", FAILED, "APNS_AUTH_ERROR", None),
    ("QUOTA_EXCEEDED", "QUOTA_EXCEEDED", RETRY, "QUOTA_EXCEEDED", 60),
    ("QUOTA_EXCEEDED:retry_after=5", "QUOTA_EXCEEDED", RETRY, "QUOTA_EXCEEDED", 60),
    ("QUOTA_EXCEEDED:retry_after=120", "QUOTA_EXCEEDED", RETRY, "QUOTA_EXCEEDED", 120),
    ("UNAVAILABLE", "UNAVAILABLE", RETRY, "UNAVAILABLE", None),
    ("UNAVAILABLE:retry_after=30", "UNAVAILABLE", RETRY, "UNAVAILABLE", 30),
    ("INTERNAL", "INTERNAL", RETRY, "INTERNAL", None),
    ("UNAUTHENTICATED", "UNAUTHENTICATED", FAILED, "UNAUTHENTICATED", None),
    ("PERMISSION_DENIED", "PERMISSION_DENIED", FAILED, "PERMISSION_DENIED", None),
    ("NOT_FOUND", "NOT_FOUND", FAILED, "NOT_FOUND", None),
    ("RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", RETRY, "RESOURCE_EXHAUSTED", 60),
    ("DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", RETRY, "DEADLINE_EXCEEDED", None),
    ("HTTP_429", "http_429", RETRY, "http_429", 60),
    ("HTTP_502", "http_5xx", RETRY, "http_502", None),
    ("HTTP_503:retry_after=30", "http_5xx", RETRY, "http_503", 30),
    ("HTTP_418", "http_4xx", FAILED, "http_418", None),
]
# Rows exercised by their own tests below rather than by a scripted FCM answer.
OWN_TESTS = {
    "timeout",
    "connection_error",
    "auth_rejected",
    "auth_unavailable",
    "invalid_message",
    "fcm_not_configured",
}


def test_every_error_table_row_is_tested():
    assert {row[1] for row in ROWS} | OWN_TESTS == set(ERROR_TABLE)


@pytest.mark.parametrize(("answer", "row", "kind", "error", "retry_after"), ROWS)
def test_error_table_row_over_http(fake, credential, answer, row, kind, error, retry_after):
    fake.script(TOKEN, [answer])

    outcome = send(fake.url, credential)

    assert ERROR_TABLE[row] is kind
    assert (outcome.kind, outcome.error, outcome.retry_after) == (kind, error, retry_after)
    assert TOKEN not in outcome.detail
    assert outcome.detail


def test_retry_after_http_date(fake, credential):
    fake.script(TOKEN, [f"UNAVAILABLE:retry_after={http_date(90)}"])

    outcome = send(fake.url, credential)

    assert outcome.kind is RETRY
    assert 85 <= outcome.retry_after <= 90


@pytest.mark.parametrize(
    ("status", "code", "misconfigured"),
    [
        (403, "SENDER_ID_MISMATCH", True),
        (401, "THIRD_PARTY_AUTH_ERROR", True),
        (401, "APNS_AUTH_ERROR", True),
        (401, None, True),
        (403, None, True),
        (404, "UNREGISTERED", False),
        (400, "INVALID_ARGUMENT", False),
        (401, "UNAUTHENTICATED", False),
        (503, "UNAVAILABLE", False),
    ],
)
def test_answers_blaming_the_app_setup_are_flagged_misconfigured(status, code, misconfigured):
    details = f', "details": [{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "{code}"}}]'  # noqa: E501
    body = f'{{"error": {{"code": {status}{details if code else ""}}}}}'.encode()

    outcome = outcome_for_response(status, {}, body)

    assert outcome.misconfigured is misconfigured
    assert (outcome.error in MISCONFIGURED) is misconfigured


def test_an_app_without_a_service_account_is_misconfigured():
    outcome = outcome_not_configured()

    assert (outcome.kind, outcome.error) == (FAILED, "fcm_not_configured")
    assert ERROR_TABLE["fcm_not_configured"] is FAILED and outcome.misconfigured


def test_invalid_argument_naming_the_token_only_in_its_message_is_an_invalid_token():
    body = b'{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "The registration token is not a valid FCM registration token"}}'  # noqa: E501

    outcome = outcome_for_response(400, {}, body)

    assert (outcome.kind, outcome.error) == (INVALID_TOKEN, "INVALID_ARGUMENT")


def test_unknown_fcm_code_falls_back_to_the_http_status():
    body = b'{"error": {"code": 503, "status": "UNAVAILABLE", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "SOMETHING_NEW"}]}}'  # noqa: E501

    outcome = outcome_for_response(503, {}, body)

    assert (outcome.kind, outcome.error) == (RETRY, "SOMETHING_NEW")


def test_detail_never_echoes_the_push_token():
    body = f'{{"error": {{"code": 400, "message": "Bad value {TOKEN}"}}}}'.encode()

    outcome = outcome_for_response(400, {}, body, token=TOKEN)

    assert TOKEN not in outcome.detail
    assert outcome.detail.endswith("...Qz9w4K")


def test_timeout_is_retried(fake, credential):
    fake.set_faults(latency_ms=2000)

    outcome = send(fake.url, credential, timeout=0.5)

    assert (outcome.kind, outcome.error) == (RETRY, "timeout")


def test_connection_refused_is_retried(credential):
    outcome = send(closed_port_url(), credential)

    assert (outcome.kind, outcome.error) == (RETRY, "connection_error")


def test_rejected_service_account_fails_with_a_clear_detail(fake):
    unknown = new_service_account("proj-a", f"{fake.url}/token")  # never registered

    outcome = send(fake.url, FcmCredential.from_service_account(unknown))

    assert (outcome.kind, outcome.error) == (FAILED, "auth_rejected")
    assert "invalid_grant" in outcome.detail
    assert unknown["client_email"] in outcome.detail
    assert fake.stats()["outcomes"] == {}


def test_bad_credential_is_fetched_once_for_a_whole_batch(fake):
    unknown = FcmCredential.from_service_account(new_service_account("proj-a", f"{fake.url}/token"))
    calls = []
    original = unknown._google.refresh
    unknown._google.refresh = lambda request: calls.append(1) or original(request)

    async def run():
        transport = FcmTransport(api_url=fake.url)
        outcomes = await transport.send_many(unknown, [(f"d{i}", MESSAGE) for i in range(20)])
        await transport.aclose()
        return outcomes

    outcomes = asyncio.run(run())

    assert {o.error for o in outcomes} == {"auth_rejected"}
    assert len(calls) == 1


def test_unreachable_token_endpoint_is_retried(fake):
    info = new_service_account("proj-a", f"{closed_port_url()}/token")

    outcome = send(fake.url, FcmCredential.from_service_account(info))

    assert (outcome.kind, outcome.error) == (RETRY, "connection_error")
    assert "OAuth token endpoint" in outcome.detail


def test_token_endpoint_server_error_is_retried(credential):
    exc = auth_exceptions.RefreshError("server_error: backend down", retryable=True)

    outcome = _auth_outcome(exc, credential)

    assert (outcome.kind, outcome.error) == (RETRY, "auth_unavailable")


def test_credential_for_caches_by_key_and_notices_a_new_key(fake, account, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = "127.0.0.1"  # the fake's token_uri
    first = credential_for("app-1", account)
    again = credential_for("app-1", dict(account))
    rotated = credential_for("app-1", fake.service_account("proj-a"))

    assert first is again
    assert rotated is not first
    assert credential_for("app-2", account) is not first
    assert (first.project_id, first.client_email) == ("proj-a", account["client_email"])


def test_from_service_account_rejects_other_files():
    with pytest.raises(ValueError):
        FcmCredential.from_service_account({"type": "authorized_user"})


def test_logs_carry_the_prefix_and_never_the_whole_token(fake, credential, caplog):
    fake.script(TOKEN, ["UNREGISTERED"])
    caplog.set_level(logging.DEBUG, logger="push.transports.fcm")

    send(fake.url, credential)

    ours = [r.getMessage() for r in caplog.records if r.name == "push.transports.fcm"]
    assert ours
    assert all(line.startswith("FCM:") for line in ours)
    assert TOKEN not in caplog.text
    assert "...Qz9w4K" in caplog.text
    assert "BEGIN PRIVATE KEY" not in caplog.text


def test_data_values_that_are_not_strings_arrive_as_json(fake, credential):
    message = PushMessage("n-3", "t", "b", data={"n": 1, "nested": {"a": [True, None]}, "s": "x"})

    assert send(fake.url, credential, message=message).kind is DELIVERED

    [sent] = fake.messages
    assert sent["data"] == {
        "n": "1",
        "nested": '{"a":[true,null]}',
        "s": "x",
        "notification_id": "n-3",
    }
