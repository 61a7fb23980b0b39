"""The Web Push transport, through real HTTP into the fake push service (real pywebpush/ECE)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import socket
import time
import types

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from fakes.webpush import WebPushFake
from push import outbound
from push.outbound import OutboundPolicy
from push.transports import webpush
from push.transports.base import Outcome, OutcomeKind, PushMessage, parse_retry_after
from push.transports.webpush import (
    ERROR_TABLE,
    MAX_PAYLOAD,
    VapidKey,
    WebPushTransport,
    build_payload,
    topic_for,
    validate_subscription,
)

LOCAL = OutboundPolicy("127.0.0.1")
VAPID = VapidKey.generate("mailto:ops@keymaster.example")


def message(notification_id: str = "n-1", **kwargs: object) -> PushMessage:
    defaults: dict = {"title": "Shift approved", "body": "See you at 9", "data": {"route": "/s"}}
    defaults.update(kwargs)
    return PushMessage(notification_id=notification_id, **defaults)


async def _with_transport(coro_fn, **kwargs):  # noqa: ANN001, ANN202
    transport = WebPushTransport(policy=kwargs.pop("policy", LOCAL), **kwargs)
    try:
        return await coro_fn(transport)
    finally:
        await transport.aclose()


def send(sub: dict, msg: PushMessage, vapid: VapidKey = VAPID, **kwargs: object) -> Outcome:
    return asyncio.run(_with_transport(lambda t: t.send(vapid, sub, msg), **kwargs))


def jwt_claims(authorization: str) -> tuple[dict, str]:
    params = dict(p.strip().split("=", 1) for p in authorization.split(" ", 1)[1].split(","))
    claims = params["t"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4))), params["k"]


class LoopbackDNS(AbstractResolver):
    """A DNS that answers 127.0.0.1 for every name."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    fake = WebPushFake()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server):
    server.reset()
    return server


# -- delivery -----------------------------------------------------------------------------


def test_the_device_decrypts_exactly_build_payload(fake) -> None:
    sub = fake.new_subscription(VAPID.public_key_b64url)
    msg = message(data={"route": "/schedule", "emoji": "✓"})
    assert send(sub, msg) == Outcome.delivered()
    [received] = fake.received(sub)
    assert received.payload == build_payload(msg)
    assert json.loads(received.payload) == {
        "title": "Shift approved",
        "body": "See you at 9",
        "data": {"route": "/schedule", "emoji": "✓"},
        "notification_id": "n-1",
    }
    assert received.headers["content-encoding"] == "aes128gcm"


def test_ttl_urgency_and_topic_headers_arrive(fake) -> None:
    sub = fake.new_subscription()
    send(sub, message(ttl=90, urgency="low", collapse_key="chat room #42"))
    send(sub, message(priority="high", collapse_key="scores"))
    send(sub, message())
    first, second, third = (r.headers for r in fake.received(sub))
    assert (first["ttl"], first["urgency"]) == ("90", "low")
    assert first["topic"] == topic_for("chat room #42")
    assert (second["urgency"], second["topic"]) == ("high", "scores")
    assert third["urgency"] == "normal"
    assert "topic" not in third


def test_topic_is_a_stable_rfc8030_token() -> None:
    assert topic_for("scores") == "scores"
    hashed = topic_for("chat room #42")
    assert hashed == topic_for("chat room #42") != topic_for("chat room #43")
    assert len(hashed) <= 32
    assert set(hashed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(topic_for("x" * 33)) == 32


def test_the_vapid_jwt_is_rfc8292_shaped(fake) -> None:
    sub = fake.new_subscription()
    send(sub, message())
    claims, k = jwt_claims(fake.received(sub)[0].headers["authorization"])
    assert claims["aud"] == fake.url
    assert claims["sub"] == "mailto:ops@keymaster.example"
    assert 12 * 3600 - 60 <= claims["exp"] - time.time() <= 12 * 3600
    assert k == VAPID.public_key_b64url
    key = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
    assert len(key) == 65 and key[0] == 4


def test_fifty_messages_share_one_cached_jwt_and_go_concurrently(fake) -> None:
    sub = fake.new_subscription()
    fake.set_faults(latency_ms=200)
    items = [(sub, message(f"n-{i}")) for i in range(50)]
    outcomes = asyncio.run(_with_transport(lambda t: t.send_many(VAPID, items)))
    assert outcomes == [Outcome.delivered()] * 50
    assert fake.jwts_seen == 1
    ids = sorted(json.loads(r.payload)["notification_id"] for r in fake.received(sub))
    assert ids == sorted(f"n-{i}" for i in range(50))
    # Held 200 ms each, they were in flight together, not one after another.
    assert fake.stats()["peak_in_flight"] == 50


def test_the_jwt_is_refreshed_an_hour_before_it_expires(fake, monkeypatch) -> None:
    sub = fake.new_subscription()
    offset = [0.0]
    clock = types.SimpleNamespace(time=lambda: time.time() + offset[0])
    monkeypatch.setattr(webpush, "time", clock)

    async def three_sends(transport: WebPushTransport) -> None:
        await transport.send(VAPID, sub, message("a"))
        offset[0] = 10 * 3600
        await transport.send(VAPID, sub, message("b"))
        assert fake.jwts_seen == 1
        offset[0] = 11 * 3600 + 5
        await transport.send(VAPID, sub, message("c"))

    asyncio.run(_with_transport(three_sends))
    assert fake.jwts_seen == 2
    assert len(fake.received(sub)) == 3


def test_each_vapid_key_gets_its_own_jwt(fake) -> None:
    sub = fake.new_subscription()
    other = VapidKey.generate("https://keymaster.example")

    async def both(transport: WebPushTransport) -> list[Outcome]:
        return [
            await transport.send(VAPID, sub, message()),
            await transport.send(other, sub, message()),
        ]

    assert asyncio.run(_with_transport(both)) == [Outcome.delivered()] * 2
    assert fake.jwts_seen == 2


def test_send_many_keeps_order_across_outcomes(fake) -> None:
    good, gone = fake.new_subscription(), fake.new_subscription()
    fake.expire(gone)
    items = [(good, message("1")), (gone, message("2")), (good, message("3"))]
    outcomes = asyncio.run(_with_transport(lambda t: t.send_many(VAPID, items)))
    assert [o.kind for o in outcomes] == ["delivered", "invalid_token", "delivered"]


# -- the error table, row by row, through real HTTP ----------------------------------------

STATUS_ROWS = [
    (200, OutcomeKind.DELIVERED),
    (201, OutcomeKind.DELIVERED),
    (202, OutcomeKind.DELIVERED),
    (301, OutcomeKind.FAILED),
    (302, OutcomeKind.FAILED),
    (307, OutcomeKind.FAILED),
    (308, OutcomeKind.FAILED),
    (400, OutcomeKind.FAILED),
    (401, OutcomeKind.FAILED),
    (403, OutcomeKind.FAILED),
    (404, OutcomeKind.INVALID_TOKEN),
    (410, OutcomeKind.INVALID_TOKEN),
    (413, OutcomeKind.FAILED),
    (418, OutcomeKind.FAILED),
    (429, OutcomeKind.RETRY),
    (500, OutcomeKind.RETRY),
    (502, OutcomeKind.RETRY),
    (503, OutcomeKind.RETRY),
    (504, OutcomeKind.RETRY),
]


def test_every_status_row_of_the_table_is_tested_here() -> None:
    tested = {status for status, _ in STATUS_ROWS}
    statuses = {key for key in ERROR_TABLE if isinstance(key, int)}
    assert statuses <= tested
    assert {f"{s // 100}xx" for s in tested} >= {k for k in ERROR_TABLE if str(k).endswith("xx")}


@pytest.mark.parametrize(("status", "kind"), STATUS_ROWS)
def test_status_maps_to_outcome(fake, status, kind) -> None:
    sub = fake.new_subscription()
    fake.script(sub, [status])
    outcome = send(sub, message())
    assert outcome.kind == kind
    if kind is not OutcomeKind.DELIVERED:
        assert outcome.error == f"http_{status}"
        assert outcome.detail
    assert fake.stats()["statuses"] == {str(status): 1}  # one request, redirects not followed


def test_retry_after_seconds_and_http_date(fake) -> None:
    sub = fake.new_subscription()
    in_two_minutes = email.utils.formatdate(time.time() + 120, usegmt=True)
    answers = [{"status": 503, "retry_after": "30"}, {"status": 429, "retry_after": in_two_minutes}]
    fake.script(sub, [*answers, 429])
    assert send(sub, message()) == Outcome(OutcomeKind.RETRY, "http_503", "push service error", 30)
    assert 110 <= send(sub, message()).retry_after <= 120
    assert send(sub, message()).retry_after is None


def test_parse_retry_after() -> None:
    assert parse_retry_after("30") == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("99999999") == 24 * 3600


def test_a_slow_push_service_is_a_timeout_to_retry(fake) -> None:
    sub = fake.new_subscription()
    fake.set_faults(latency_ms=2000)
    outcome = send(sub, message(), timeout=0.5)
    assert (outcome.kind, outcome.error) == (OutcomeKind.RETRY, "timeout")


def test_a_closed_port_is_a_connection_error_to_retry() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sub = dict(WebPushFake(public_url=f"http://127.0.0.1:{port}").new_subscription())
    outcome = send(sub, message())
    assert (outcome.kind, outcome.error) == (OutcomeKind.RETRY, "connection_error")


def test_expired_subscription_is_invalid_token(fake) -> None:
    sub = fake.new_subscription()
    fake.expire(sub)
    outcome = send(sub, message())
    assert (outcome.kind, outcome.error) == (OutcomeKind.INVALID_TOKEN, "http_410")


def test_a_mismatched_vapid_key_fails_without_killing_the_subscription(fake) -> None:
    other = VapidKey.generate("mailto:ops@keymaster.example")
    sub = fake.new_subscription(other.public_key_b64url)
    outcome = send(sub, message())
    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, "http_403")
    assert send(sub, message(), vapid=other) == Outcome.delivered()


@pytest.mark.parametrize(
    ("status", "misconfigured"),
    [(401, True), (403, True), (400, False), (410, False), (503, False)],
)
def test_only_vapid_rejections_are_flagged_misconfigured(fake, status, misconfigured) -> None:
    sub = fake.new_subscription()
    fake.script(sub, [status])
    assert send(sub, message()).misconfigured is misconfigured


# -- refusals before any request -------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433"])
def test_an_endpoint_the_policy_refuses_is_never_contacted(fake, host) -> None:
    sub = fake.new_subscription()
    sub["endpoint"] = sub["endpoint"].replace("127.0.0.1", host)
    outcome = send(sub, message(), policy=OutboundPolicy(""))
    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, "endpoint_refused")
    assert fake.stats()["requests"] == 0


def test_a_name_resolving_to_loopback_is_refused_at_connect_time(fake, monkeypatch) -> None:
    monkeypatch.setattr(outbound, "DefaultResolver", LoopbackDNS)
    sub = fake.new_subscription()
    sub["endpoint"] = sub["endpoint"].replace("http://127.0.0.1", "https://push.example")
    outcome = send(sub, message(), policy=OutboundPolicy(""))
    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, "endpoint_refused")
    assert "127.0.0.1" in outcome.detail
    assert fake.stats()["requests"] == 0


def test_a_payload_too_large_to_encrypt_is_failed_without_sending(fake) -> None:
    sub = fake.new_subscription()
    overhead = len(build_payload(message(data={"blob": ""})))
    at_limit = message(data={"blob": "x" * (MAX_PAYLOAD - overhead)})
    assert len(build_payload(at_limit)) == MAX_PAYLOAD
    assert send(sub, at_limit) == Outcome.delivered()  # exactly 4096 bytes on the wire
    too_big = message(data={"blob": "x" * (MAX_PAYLOAD - overhead + 1)})
    outcome = send(sub, too_big)
    assert (outcome.kind, outcome.error) == (OutcomeKind.FAILED, "payload_too_large")
    assert fake.stats()["requests"] == 1


def test_a_malformed_stored_subscription_is_invalid_without_sending(fake) -> None:
    sub = fake.new_subscription()
    sub["keys"] = dict(sub["keys"], auth=base64.urlsafe_b64encode(b"x" * 15).decode())
    outcome = send(sub, message())
    assert (outcome.kind, outcome.error) == (OutcomeKind.INVALID_TOKEN, "invalid_subscription")
    assert outcome.detail.startswith("keys.auth:")
    assert fake.stats()["requests"] == 0


def test_logs_name_the_origin_never_the_endpoint_token(fake, caplog) -> None:
    sub = fake.new_subscription()
    fake.expire(sub)
    caplog.set_level(logging.DEBUG, logger="push.transports.webpush")
    send(sub, message())
    token = sub["endpoint"].rsplit("/", 1)[1]
    assert "WebPush: " + fake.url in caplog.text
    assert token not in caplog.text
    assert sub["keys"]["auth"] not in caplog.text


def test_jwt_lifetime_is_capped_at_24_hours() -> None:
    with pytest.raises(ValueError, match="jwt_lifetime"):
        WebPushTransport(policy=LOCAL, jwt_lifetime=25 * 3600)


def test_vapid_subject_must_be_mailto_or_https() -> None:
    with pytest.raises(ValueError, match="subject"):
        VapidKey.generate("ops@keymaster.example")


# -- validate_subscription ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_subscription(server) -> dict:
    """A real P-256 key and auth secret on a Chrome-style FCM endpoint."""
    keys = server.new_subscription()["keys"]
    return {
        "endpoint": "https://fcm.googleapis.com/fcm/send/cXk2:APA91bH-token-like-value",
        "expirationTime": None,
        "keys": keys,
    }


def test_validate_accepts_a_browser_subscription_object_and_json(browser_subscription) -> None:
    assert validate_subscription(browser_subscription) == browser_subscription
    assert validate_subscription(json.dumps(browser_subscription)) == browser_subscription


def test_validate_normalises_padding_and_standard_base64(browser_subscription) -> None:
    keys = browser_subscription["keys"]
    standard = {
        name: base64.b64encode(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))).decode()
        for name, value in keys.items()
    }
    value = dict(browser_subscription, keys=standard, expirationTime=1767225600000)
    normalised = validate_subscription(value)
    assert normalised["keys"] == keys
    assert normalised["expirationTime"] == 1767225600000


def test_validate_allows_http_only_to_an_allowed_host(browser_subscription) -> None:
    local = dict(browser_subscription, endpoint="http://127.0.0.1:8090/push/abc")
    with pytest.raises(ValueError, match="^endpoint: "):
        validate_subscription(local)
    assert validate_subscription(local, LOCAL)["endpoint"] == local["endpoint"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


OFF_CURVE = b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big")


@pytest.mark.parametrize(
    ("change", "prefix"),
    [
        ({"endpoint": "http://fcm.googleapis.com/fcm/send/abc"}, "endpoint: plain http"),
        ({"endpoint": "https://169.254.169.254/push"}, "endpoint: address"),
        ({"endpoint": None}, "endpoint: required"),
        ({"keys": {"p256dh": _b64(OFF_CURVE)}}, "keys.p256dh: not a point on the P-256 curve"),
        ({"keys": {"p256dh": _b64(b"\x02" + b"\x01" * 32)}}, "keys.p256dh: .* got 33 bytes"),
        ({"keys": {"p256dh": "not base64!"}}, "keys.p256dh: not valid base64url"),
        ({"keys": {"p256dh": None}}, "keys.p256dh: required"),
        ({"keys": {"auth": _b64(b"a" * 15)}}, "keys.auth: must be 16 bytes, got 15"),
        ({"keys": None}, "keys: required"),
        ({"expirationTime": "tomorrow"}, "expirationTime: "),
        ({"expirationTime": True}, "expirationTime: "),
    ],
)
def test_validate_rejects_naming_the_field(browser_subscription, change, prefix) -> None:
    value = json.loads(json.dumps(browser_subscription))
    for name, new in change.items():
        if name == "keys" and new is not None:
            value["keys"].update(new)
        else:
            value[name] = new
    with pytest.raises(ValueError, match=f"^{prefix}"):
        validate_subscription(value)


def test_validate_rejects_what_is_not_a_subscription() -> None:
    with pytest.raises(ValueError, match="^subscription: not valid JSON"):
        validate_subscription("{nope")
    with pytest.raises(ValueError, match="^subscription: must be a JSON object"):
        validate_subscription("[]")
