"""KeymasterClient against a stub Keymaster over real HTTP: auth, retries, errors, chunking."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from stub_server import FakeClock, Recorded, Reply, StubServer, api_error

from keymaster_client import (
    AuthenticationError,
    Delivery,
    IdempotencyConflict,
    KeymasterClient,
    KeymasterConnectionError,
    KeymasterError,
    NotEnrolled,
    NotFound,
    Notification,
    PayloadTooLarge,
    PermissionDenied,
    PushDisabled,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ValidationError,
)
from keymaster_client.retry import parse_retry_after

# A KeymasterClient, or an AsyncKeymasterClient behind conftest.AwaitEach: same methods.
MakeClient = Callable[..., Any]
SENT = Reply(201, {"notification_id": "n-1"})


def echo_ids(request: Recorded) -> Reply:
    """Answer a bulk or batch send with one id per target, derived from the user id."""
    payload = request.json
    users = payload.get("user_ids") or [item["user_id"] for item in payload["notifications"]]
    return Reply(201, {"notification_ids": [f"n-{user}" for user in users]})


# --- Access tokens -------------------------------------------------------------------------


def test_token_request_uses_basic_auth_and_client_credentials_grant(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send", SENT)

    make_client().send_push("u1", "Hi", "There")

    (token_request,) = stub.to("/oauth/token")
    credentials = base64.b64encode(b"app-1:secret-1").decode()
    assert token_request.headers["authorization"] == f"Basic {credentials}"
    assert token_request.form == {"grant_type": "client_credentials", "scope": "push:send"}
    assert stub.to("/push/send")[0].headers["authorization"] == "Bearer token-1"


def test_client_credentials_are_form_encoded_before_basic_auth(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.client_secret = "a+b/c=d:e%f g"  # RFC 6749 section 2.3.1: "+" must not become " "
    stub.install("POST", "/push/send", SENT)

    assert make_client().send_push("u1", "Hi", "There") == "n-1"

    (token_request,) = stub.to("/oauth/token")
    sent = base64.b64decode(token_request.headers["authorization"].removeprefix("Basic "))
    assert sent == b"app-1:a%2Bb%2Fc%3Dd%3Ae%25f+g"


def test_token_is_fetched_once_and_reused_across_calls(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send", SENT)
    client = make_client()

    for _ in range(3):
        client.send_push("u1", "Hi", "There")

    assert len(stub.to("/oauth/token")) == 1
    assert {r.headers["authorization"] for r in stub.to("/push/send")} == {"Bearer token-1"}


def test_token_is_refreshed_shortly_before_it_expires(
    stub: StubServer, make_client: MakeClient, clock: FakeClock
) -> None:
    stub.expires_in = 60  # refreshed 6 s early: a tenth of its life, as it is under 300 s
    stub.install("POST", "/push/send", SENT)
    client = make_client()

    client.send_push("u1", "Hi", "There")
    clock.advance(53)
    client.send_push("u1", "Hi", "There")
    clock.advance(2)
    client.send_push("u1", "Hi", "There")

    assert stub.issued_tokens == ["token-1", "token-2"]
    used = [r.headers["authorization"] for r in stub.to("/push/send")]
    assert used == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_refused_token_is_refreshed_once_and_the_call_retried(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.install("POST", "/push/send", SENT)
    client = make_client()
    client.send_push("u1", "Hi", "There")
    stub.revoke_tokens()

    assert client.send_push("u1", "Hi", "There", idempotency_key="k") == "n-1"

    used = [r.headers["authorization"] for r in stub.to("/push/send")]
    assert used == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]
    assert [r.headers["idempotency-key"] for r in stub.to("/push/send")[1:]] == ["k", "k"]
    assert sleeps == []


def test_second_refusal_after_refresh_raises_authentication_error(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.queue(
        "POST",
        "/push/send",
        api_error(401, "not_authenticated"),
        api_error(401, "not_authenticated"),
    )
    stub.install("POST", "/push/send", SENT)

    with pytest.raises(AuthenticationError) as caught:
        make_client().send_push("u1", "Hi", "There")

    assert caught.value.code == "not_authenticated"
    assert caught.value.status == 401
    assert len(stub.to("/push/send")) == 2
    assert len(stub.to("/oauth/token")) == 2


def test_wrong_client_secret_raises_authentication_error_with_oauth_code(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        make_client(client_secret="wrong").send_push("u1", "Hi", "There")

    assert caught.value.code == "invalid_client"
    assert caught.value.message == "bad credentials"
    assert len(stub.to("/oauth/token")) == 1
    assert stub.to("/push/send") == []
    assert sleeps == []


def test_throttled_token_request_is_retried_after_retry_after(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.queue(
        "POST",
        "/oauth/token",
        Reply(
            429,
            {"error": "too_many_requests", "error_description": "slow down"},
            {"Retry-After": "1"},
        ),
    )
    stub.install("POST", "/push/send", SENT)

    assert make_client().send_push("u1", "Hi", "There") == "n-1"

    assert sleeps == [1.0]
    assert len(stub.to("/oauth/token")) == 2


def test_threads_sharing_a_client_wait_for_one_token_fetch(
    stub: StubServer, clock: FakeClock
) -> None:
    stub.token_delay = 0.2  # long enough for every thread to find no token
    stub.install("POST", "/push/send", SENT)
    client = KeymasterClient(stub.url, stub.client_id, stub.client_secret, clock=clock)
    failures: list[BaseException] = []

    def send() -> None:
        try:
            client.send_push("u1", "Hi", "There")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    client.close()
    assert failures == []
    assert stub.issued_tokens == ["token-1"]
    assert len(stub.to("/push/send")) == 8


# --- Retries -------------------------------------------------------------------------------


def test_rate_limited_send_waits_retry_after_and_resends_with_the_same_key(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.queue(
        "POST", "/push/send", Reply(429, {"error": {"code": "rate_limited"}}, {"Retry-After": "2"})
    )
    stub.install("POST", "/push/send", SENT)

    assert make_client().send_push("u1", "Hi", "There") == "n-1"

    assert sleeps == [2.0]
    keys = [r.headers["idempotency-key"] for r in stub.to("/push/send")]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert len(keys[0]) == 36  # a generated uuid4


def test_each_logical_send_gets_its_own_generated_key(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send", SENT)
    client = make_client()

    client.send_push("u1", "Hi", "There")
    client.send_push("u1", "Hi", "There")

    keys = {r.headers["idempotency-key"] for r in stub.to("/push/send")}
    assert len(keys) == 2


def test_server_error_is_retried_with_backoff_then_succeeds(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.queue(
        "POST", "/push/send", Reply(503, b"upstream unavailable", {"Content-Type": "text/plain"})
    )
    stub.install("POST", "/push/send", SENT)

    assert make_client().send_push("u1", "Hi", "There", idempotency_key="k") == "n-1"

    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.5  # full jitter under the first backoff step
    assert [r.headers["idempotency-key"] for r in stub.to("/push/send")] == ["k", "k"]


def test_backoff_grows_and_gives_up_after_max_retries_with_server_error(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.install("POST", "/push/send", api_error(500, "internal_error", "boom"))

    with pytest.raises(ServerError) as caught:
        make_client(max_retries=4).send_push("u1", "Hi", "There")

    assert caught.value.status == 500
    assert caught.value.message == "boom"
    assert len(stub.to("/push/send")) == 5
    assert len(sleeps) == 4
    assert all(0 <= wait <= 0.5 * 2**n for n, wait in enumerate(sleeps))


def test_read_timeout_is_retried_with_the_same_key(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.queue("POST", "/push/send", Reply(201, {"notification_id": "late"}, delay=1.0))
    stub.install("POST", "/push/send", SENT)

    assert make_client(timeout=0.3).send_push("u1", "Hi", "There", idempotency_key="k") == "n-1"

    assert [r.headers["idempotency-key"] for r in stub.to("/push/send")] == ["k", "k"]
    assert len(sleeps) == 1


def test_connection_refused_raises_connection_error_after_max_retries(
    make_client: MakeClient, sleeps: list[float]
) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(KeymasterConnectionError) as caught:
        make_client(base_url=f"http://127.0.0.1:{port}", max_retries=3).send_push("u1", "Hi", "X")

    assert isinstance(caught.value, KeymasterError)
    assert caught.value.status is None
    assert "after 4 attempts" in caught.value.message
    assert len(sleeps) == 3


def test_quota_exceeded_longer_than_max_retry_wait_raises_at_once(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.install(
        "POST",
        "/push/send",
        Reply(
            429,
            {"error": {"code": "quota_exceeded", "message": "Daily quota of 10000 reached"}},
            {"Retry-After": "3600"},
        ),
    )

    with pytest.raises(QuotaExceeded) as caught:
        make_client(max_retry_wait=60).send_push("u1", "Hi", "There")

    assert caught.value.retry_after == 3600
    assert isinstance(caught.value, RateLimited)
    assert len(stub.to("/push/send")) == 1
    assert sleeps == []


def test_retry_after_as_http_date_is_honoured(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    stub.queue(
        "POST",
        "/push/send",
        Reply(
            503,
            {"error": {"code": "maintenance"}},
            {"Retry-After": format_datetime(later, usegmt=True)},
        ),
    )
    stub.install("POST", "/push/send", SENT)

    make_client().send_push("u1", "Hi", "There")

    assert len(sleeps) == 1
    assert 25 <= sleeps[0] <= 30


def test_parse_retry_after_reads_seconds_and_dates() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


# --- Error mapping -------------------------------------------------------------------------


def test_validation_error_carries_fields_and_is_not_retried(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    fields = {"title": ["This field is required."], "data": ["Must be at most 4096 bytes."]}
    stub.install(
        "POST", "/push/send", api_error(400, "validation_error", "Invalid input.", fields=fields)
    )

    with pytest.raises(ValidationError) as caught:
        make_client().send_push("u1", "", "There")

    assert caught.value.fields == fields
    assert caught.value.code == "validation_error"
    assert caught.value.response_body == {
        "error": {"code": "validation_error", "message": "Invalid input.", "fields": fields}
    }
    assert len(stub.to("/push/send")) == 1
    assert sleeps == []


def test_not_enrolled_carries_the_user_ids(stub: StubServer, make_client: MakeClient) -> None:
    stub.install(
        "POST",
        "/push/send/bulk",
        api_error(403, "not_enrolled", "Users not enrolled", user_ids=["u2", "u3"]),
    )

    with pytest.raises(NotEnrolled) as caught:
        make_client().send_bulk(["u1", "u2", "u3"], "Hi", "There")

    assert caught.value.user_ids == ["u2", "u3"]
    assert isinstance(caught.value, PermissionDenied)
    assert len(stub.to("/push/send/bulk")) == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (api_error(403, "permission_denied"), PermissionDenied),
        (api_error(403, "push_disabled"), PushDisabled),
        (api_error(404, "not_found"), NotFound),
        (api_error(422, "idempotency_key_reused"), IdempotencyConflict),
        (api_error(413, "payload_too_large"), PayloadTooLarge),
        (api_error(403, "a_code_from_the_future"), PermissionDenied),
        (api_error(409, "conflict"), KeymasterError),
        (
            Reply(413, b"<html>Request Entity Too Large</html>", {"Content-Type": "text/html"}),
            PayloadTooLarge,
        ),
    ],
)
def test_error_answers_map_to_exception_types(
    stub: StubServer, make_client: MakeClient, reply: Reply, expected: type[KeymasterError]
) -> None:
    stub.install("POST", "/push/send", reply)

    with pytest.raises(KeymasterError) as caught:
        make_client().send_push("u1", "Hi", "There")

    assert type(caught.value) is expected
    assert caught.value.status == reply.status
    assert len(stub.to("/push/send")) == 1


# --- Requests and answers ------------------------------------------------------------------


def test_send_push_sends_given_fields_and_omits_unset_ones(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send", SENT)
    client = make_client()

    client.send_push("u1", "Hi", "There", idempotency_key="key-1")
    client.send_push(
        "u1", "Hi", "There", {"route": "/x"}, 60, priority="high", collapse_key="c", dry_run=True
    )

    first, second = stub.to("/push/send")
    assert first.json == {"user_id": "u1", "title": "Hi", "body": "There"}
    assert first.headers["idempotency-key"] == "key-1"
    assert second.json == {
        "user_id": "u1",
        "title": "Hi",
        "body": "There",
        "data": {"route": "/x"},
        "ttl": 60,
        "priority": "high",
        "collapse_key": "c",
        "dry_run": True,
    }


def test_send_bulk_splits_long_lists_into_chunks_and_keeps_order(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send/bulk", echo_ids)
    user_ids = [f"u{i}" for i in range(1201)]

    ids = make_client().send_bulk(user_ids, "Hi", "There", {"k": "v"}, idempotency_key="bulk")

    assert ids == [f"n-u{i}" for i in range(1201)]
    chunks = stub.to("/push/send/bulk")
    assert [len(c.json["user_ids"]) for c in chunks] == [500, 500, 201]
    assert [c.json["user_ids"][0] for c in chunks] == ["u0", "u500", "u1000"]
    assert [c.headers["idempotency-key"] for c in chunks] == ["bulk:0", "bulk:1", "bulk:2"]
    assert all(c.json["title"] == "Hi" and c.json["data"] == {"k": "v"} for c in chunks)


def test_send_bulk_within_one_batch_uses_the_key_unchanged(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send/bulk", echo_ids)

    ids = make_client().send_bulk(["a", "b"], "Hi", "There", idempotency_key="bulk")

    assert ids == ["n-a", "n-b"]
    (request,) = stub.to("/push/send/bulk")
    assert request.headers["idempotency-key"] == "bulk"
    assert request.json == {"user_ids": ["a", "b"], "title": "Hi", "body": "There"}


def test_send_batch_honours_batch_size_and_keeps_order(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send/batch", echo_ids)
    messages = [{"user_id": f"u{i}", "title": f"T{i}", "body": "B"} for i in range(5)]

    ids = make_client().send_batch(messages, batch_size=2)

    assert ids == [f"n-u{i}" for i in range(5)]
    chunks = stub.to("/push/send/batch")
    assert [c.json["notifications"] for c in chunks] == [messages[0:2], messages[2:4], messages[4:]]
    keys = [c.headers["idempotency-key"] for c in chunks]
    base = keys[0].removesuffix(":0")
    assert keys == [f"{base}:0", f"{base}:1", f"{base}:2"]


def test_chunk_keys_stay_within_the_servers_length_limit_and_are_repeatable(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send/bulk", echo_ids)
    client = make_client()
    long_key = "k" * 255

    client.send_bulk(["a", "b"], "Hi", "There", idempotency_key=long_key, batch_size=1)
    client.send_bulk(["a", "b"], "Hi", "There", idempotency_key=long_key, batch_size=1)

    keys = [r.headers["idempotency-key"] for r in stub.to("/push/send/bulk")]
    assert all(len(key) <= 255 for key in keys)
    assert keys[0] != keys[1]
    assert keys[:2] == keys[2:]


def test_dry_runs_send_the_flag_and_return_no_ids(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send", Reply(200, {"notification_id": None, "dry_run": True}))
    stub.install("POST", "/push/send/batch", Reply(200, {"notification_ids": [], "dry_run": True}))
    client = make_client()

    assert client.send_push("u1", "Hi", "There", dry_run=True) is None
    assert client.send_batch([{"user_id": "u1", "title": "T", "body": "B"}], dry_run=True) == []

    assert stub.to("/push/send")[0].json["dry_run"] is True
    assert stub.to("/push/send/batch")[0].json["dry_run"] is True


def test_failed_chunk_reports_paths_in_the_whole_list_and_what_was_sent(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.queue(
        "POST",
        "/push/send/batch",
        echo_ids,
        api_error(400, "validation_error", fields={"notifications[1].body": ["Too long."]}),
    )
    messages = [{"user_id": f"u{i}", "title": "T", "body": "B"} for i in range(4)]

    with pytest.raises(ValidationError) as caught:
        make_client().send_batch(messages, idempotency_key="b", batch_size=2)

    assert caught.value.fields == {"notifications[3].body": ["Too long."]}
    assert caught.value.sent_notification_ids == ["n-u0", "n-u1"]
    assert caught.value.idempotency_key == "b"


def test_get_notification_returns_the_notification_with_deliveries(
    stub: StubServer, make_client: MakeClient
) -> None:
    notification = {
        "notification_id": "n-1",
        "app_id": "app-1",
        "user_id": "u1",
        "title": "Hi",
        "body": "There",
        "data": None,
        "ttl": None,
        "status": "delivered",
        "created_at": "2026-03-17T12:00:00Z",
        "deliveries": [
            {
                "device_id": "d1",
                "platform": "web",
                "status": "delivered",
                "error": None,
                "attempts": 1,
                "updated_at": "2026-03-17T12:00:01Z",
            }
        ],
    }
    stub.install("GET", "/push/notifications/n-1", Reply(200, notification))

    assert make_client().get_notification("n-1") == Notification(
        notification_id="n-1",
        app_id="app-1",
        user_id="u1",
        title="Hi",
        body="There",
        data=None,
        ttl=None,
        status="delivered",
        created_at=datetime(2026, 3, 17, 12, 0, tzinfo=timezone.utc),
        deliveries=(
            Delivery(
                device_id="d1",
                platform="web",
                status="delivered",
                error=None,
                attempts=1,
                updated_at=datetime(2026, 3, 17, 12, 0, 1, tzinfo=timezone.utc),
            ),
        ),
    )
    assert "idempotency-key" not in stub.to("/push/notifications/n-1")[0].headers


def test_get_notification_of_unknown_id_raises_not_found(
    stub: StubServer, make_client: MakeClient
) -> None:
    with pytest.raises(NotFound):
        make_client().get_notification("missing/../x")

    assert stub.to("/push/notifications/missing%2F..%2Fx")  # quoted, not a path traversal


def test_unregister_device_sends_delete_and_returns_none(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("DELETE", "/push/devices/d1", Reply(204))

    assert make_client().unregister_device("d1") is None
    assert len(stub.to("/push/devices/d1")) == 1


def test_unregister_device_whose_first_attempt_timed_out_is_not_an_error_when_gone(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.queue("DELETE", "/push/devices/d1", Reply(204, delay=1.0), api_error(404, "not_found"))

    assert make_client(timeout=0.3).unregister_device("d1") is None
    assert len(stub.to("/push/devices/d1")) == 2


def test_unregister_unknown_device_raises_not_found(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("DELETE", "/push/devices/d1", api_error(404, "not_found"))

    with pytest.raises(NotFound):
        make_client().unregister_device("d1")


def test_connection_error_is_also_the_builtin_and_the_old_name_warns() -> None:
    import builtins

    import keymaster_client

    assert issubclass(KeymasterConnectionError, builtins.ConnectionError)
    assert issubclass(KeymasterConnectionError, KeymasterError)
    with pytest.warns(DeprecationWarning, match="KeymasterConnectionError"):
        old = keymaster_client.ConnectionError
    assert old is KeymasterConnectionError
