"""KeymasterClient against a live Keymaster: pytest-django's `live_server`, real HTTP, test DB.

Nothing in the client is mocked: it gets its tokens from the real `/oauth/token`, sends through
the real push API, and the delivery pipeline runs (`tests.drain.drain`) into the local fake FCM
and webhook receiver. Only `sleep` and `clock` are injected, so retries and token expiry take no
time. Faults the server itself never produces on demand (a 429 with a short Retry-After, a 503
from the edge) come from `live_support.FaultProxy`, a reverse proxy in front of the live server
that also records every request the client made.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from accounts.models import App, User
from accounts.services import app_create, app_rotate_secret
from fakes.fcm import FakeFcm
from fakes.webhook import WebhookFake
from flavours import client_factory
from live_support import FaultProxy, jwt_claims
from push.delivery.runtime import runtime_reset
from push.models import Device, Notification
from push.services.config import push_config_update, webhook_secret_new
from stub_server import FakeClock
from tests.drain import drain
from tests.factories import enable_push, enroll, fcm_token, make_user, register

from keymaster_client import (
    AsyncKeymasterClient,
    AuthenticationError,
    Delivery,
    IdempotencyConflict,
    KeymasterClient,
    NotCancelable,
    NotEnrolled,
    NotFound,
    PushDisabled,
    QuotaExceeded,
    Topic,
    ValidationError,
    WebhookVerificationError,
    cli,
    verify_webhook,
)
from keymaster_client import Notification as NotificationResult

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 86_400
# Builds a KeymasterClient, or an AsyncKeymasterClient behind conftest.AwaitEach.
Connect = Callable[..., Any]


# --- Fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fcm_fake() -> Iterator[FakeFcm]:
    with FakeFcm() as fake:
        yield fake


@pytest.fixture(scope="module")
def webhook_fake() -> Iterator[WebhookFake]:
    with WebhookFake() as fake:
        yield fake


@pytest.fixture
def fakes(settings, tmp_path, fcm_fake: FakeFcm, webhook_fake: WebhookFake) -> Iterator[None]:
    """Point delivery at the fake FCM and allow webhooks to 127.0.0.1 (as tests/conftest.py)."""
    account = tmp_path / "fcm-service-account.json"
    account.write_text(json.dumps(fcm_fake.service_account("demo-project")))
    settings.FCM_CREDENTIALS_FILE = str(account)
    settings.FCM_API_URL = fcm_fake.url
    settings.OUTBOUND_ALLOWED_HOSTS = "127.0.0.1"
    settings.PUSH_SEND_TIMEOUT = 2.0
    fcm_fake.reset()
    webhook_fake.reset()
    runtime_reset()  # the transports are built from the settings just changed
    yield
    runtime_reset()


@pytest.fixture
def live_app() -> tuple[App, str]:
    """An app with push enabled, and its client secret."""
    app, secret = app_create(name="Live client app")
    enable_push(app)
    return app, secret


@pytest.fixture
def connect(
    live_server,
    sleeps: list[float],
    clock: FakeClock,
    flavour: str,
    event_loop_for_client: asyncio.AbstractEventLoop,
) -> Iterator[Connect]:
    """Build a client for an app, talking to the live server (or to `base_url`, a proxy).

    Every test using it runs twice: with KeymasterClient and with AsyncKeymasterClient.
    """
    make, clients = client_factory(
        flavour,
        event_loop_for_client,
        sleeps,
        lambda: {"base_url": live_server.url, "clock": clock, "timeout": 10},
    )

    def connect_app(app: App, secret: str, **options: Any) -> Any:
        return make(client_id=app.client_id, client_secret=secret, **options)

    yield connect_app
    for client in clients:
        client.close()
    # A raised client error keeps its traceback, whose frames hold the requests Response, which
    # keeps the socket open past close() until the cycle is collected; the live server's thread
    # for that connection would hold its PostgreSQL session and block dropping the test DB.
    gc.collect()


@pytest.fixture
def proxy(live_server) -> Iterator[FaultProxy]:
    server = FaultProxy(live_server.url).start()
    yield server
    server.stop()


def enrolled(app: App, count: int = 1) -> list[User]:
    users = [make_user() for _ in range(count)]
    enroll(app, *users)
    return users


def enrolled_with_phones(app: App, count: int, prefix: str) -> list[User]:
    """`count` enrolled users with an android device each (the first an iPhone)."""
    users = enrolled(app, count)
    for n, user in enumerate(users):
        register(user, app, fcm_token(f"{prefix}-{n}"), "ios" if n == 0 else "android")
    return users


def stored_ids(app: App) -> set[str]:
    return {str(pk) for pk in Notification.objects.filter(app=app).values_list("id", flat=True)}


# --- Sending ---------------------------------------------------------------------------------


def test_send_push_is_stored_queued_and_then_delivered_to_the_device(
    fakes, fcm_fake: FakeFcm, live_app, connect: Connect
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    token = fcm_token("live-send")
    device = register(user, app, token, "android")
    km = connect(app, secret)

    notification_id = km.send_push(
        str(user.id), "Shift", "Starts soon", data={"route": "/schedule"}, ttl=600
    )

    queued = km.get_notification(notification_id)
    assert queued.notification_id == notification_id
    assert queued.app_id == str(app.app_id) and queued.user_id == str(user.id)
    assert (queued.title, queued.body, queued.data, queued.ttl) == (
        "Shift",
        "Starts soon",
        {"route": "/schedule"},
        600,
    )
    assert queued.status == "queued"
    assert [(d.device_id, d.status) for d in queued.deliveries] == [(str(device.id), "queued")]
    assert fcm_fake.messages == []

    drain()

    delivered = km.get_notification(notification_id)
    assert delivered.status == "delivered"
    (delivery,) = delivered.deliveries
    assert (delivery.device_id, delivery.platform) == (str(device.id), "android")
    assert (delivery.status, delivery.error, delivery.attempts) == ("delivered", None, 1)
    (message,) = [m for m in fcm_fake.messages if m.get("token") == token]
    assert message["notification"] == {"title": "Shift", "body": "Starts soon"}
    assert message["data"] == {"route": "/schedule", "notification_id": notification_id}


def test_send_bulk_over_the_server_batch_limit_goes_out_in_chunks_with_ids_in_order(
    settings, live_app, connect: Connect, proxy: FaultProxy
) -> None:
    settings.PUSH_MAX_BATCH_SIZE = 3
    app, secret = live_app
    user_ids = [str(user.id) for user in enrolled(app, 7)]
    # The limit is real: one request over it is refused by the server.
    with pytest.raises(ValidationError) as too_many:
        connect(app, secret).send_bulk(user_ids[:4], "Gym closes early", "At 6pm")
    assert "user_ids" in too_many.value.fields

    km = connect(app, secret, base_url=proxy.url, batch_size=3)
    ids = km.send_bulk(user_ids, "Gym closes early", "At 6pm", idempotency_key="closing-1")

    sends = proxy.seen("/push/send/bulk")
    assert [send.json["user_ids"] for send in sends] == [
        user_ids[0:3],
        user_ids[3:6],
        user_ids[6:7],
    ]
    assert [send.headers["idempotency-key"] for send in sends] == [
        "closing-1:0",
        "closing-1:1",
        "closing-1:2",
    ]
    assert [send.status for send in sends] == [202, 202, 202]
    assert len(ids) == 7 and set(ids) == stored_ids(app)
    assert [km.get_notification(i).user_id for i in ids] == user_ids


def test_send_bulk_repeated_with_the_errors_key_sends_only_the_chunk_that_failed(
    settings, live_app, connect: Connect, sleeps: list[float]
) -> None:
    settings.PUSH_MAX_BATCH_SIZE = 3
    app, secret = live_app
    users = enrolled(app, 6)
    late = make_user()  # enrolled only after the first attempt
    user_ids = [str(user.id) for user in [*users, late]]
    km = connect(app, secret, batch_size=3)

    with pytest.raises(NotEnrolled) as failed:
        km.send_bulk(user_ids, "Closing", "At 6pm")
    error = failed.value
    assert error.user_ids == [str(late.id)]
    assert len(error.sent_notification_ids) == 6 and error.idempotency_key
    assert stored_ids(app) == set(error.sent_notification_ids)

    enroll(app, late)
    ids = km.send_bulk(user_ids, "Closing", "At 6pm", idempotency_key=error.idempotency_key)

    assert ids[:6] == error.sent_notification_ids  # replayed by the server, not sent again
    assert stored_ids(app) == set(ids) and len(ids) == 7
    assert km.get_notification(ids[6]).user_id == str(late.id)
    assert sleeps == []


def test_send_batch_stores_each_users_own_message_with_ids_in_order(
    live_app, connect: Connect
) -> None:
    app, secret = live_app
    users = enrolled(app, 3)
    km = connect(app, secret)

    ids = km.send_batch(
        [
            {"user_id": str(user.id), "title": f"Shift {n}", "body": f"Body {n}"}
            for n, user in enumerate(users)
        ]
        + [{"user_id": str(users[0].id), "title": "Again", "body": "x", "priority": "high"}]
    )

    got = [km.get_notification(i) for i in ids]
    assert [(n.user_id, n.title, n.body, n.priority) for n in got] == [
        (str(users[0].id), "Shift 0", "Body 0", "normal"),
        (str(users[1].id), "Shift 1", "Body 1", "normal"),
        (str(users[2].id), "Shift 2", "Body 2", "normal"),
        (str(users[0].id), "Again", "x", "high"),
    ]
    assert stored_ids(app) == set(ids)


def test_unregister_device_removes_it_and_a_second_call_is_not_found(
    live_app, connect: Connect, sleeps: list[float]
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    device = register(user, app)
    other_app, _ = app_create(name="Other app")
    enable_push(other_app)
    enroll(other_app, user)
    others_device = register(user, other_app)
    km = connect(app, secret)

    km.unregister_device(str(device.id))

    assert not Device.objects.filter(pk=device.id).exists()
    with pytest.raises(NotFound):
        km.unregister_device(str(device.id))
    with pytest.raises(NotFound):  # another app's device is not this app's to remove
        km.unregister_device(str(others_device.id))
    assert Device.objects.filter(pk=others_device.id).exists()
    assert sleeps == []


# --- Access tokens ---------------------------------------------------------------------------


def test_access_token_is_reused_then_refreshed_before_the_server_expires_it(
    settings, live_app, connect: Connect, proxy: FaultProxy, clock: FakeClock
) -> None:
    settings.JWT_CLIENT_LIFETIME = 100  # the client refreshes a tenth early: after 90 s
    app, secret = live_app
    (user,) = enrolled(app)
    km = connect(app, secret, base_url=proxy.url)

    km.send_push(str(user.id), "One", "x")
    clock.advance(85)
    km.send_push(str(user.id), "Two", "x")
    assert len(proxy.seen("/oauth/token")) == 1
    clock.advance(6)
    km.send_push(str(user.id), "Three", "x")

    grants = proxy.seen("/oauth/token")
    assert [grant.status for grant in grants] == [200, 200]
    sends = proxy.seen("/push/send")
    assert [send.status for send in sends] == [202, 202, 202]
    first, second, third = (send.bearer for send in sends)
    assert first == second != third
    claims = jwt_claims(first)
    assert claims["exp"] - claims["iat"] == 100  # the server's lifetime, which it honoured


def test_token_the_server_rejects_as_expired_is_replaced_once_and_the_call_retried(
    settings, live_app, connect: Connect, proxy: FaultProxy, sleeps: list[float]
) -> None:
    # 2 s, not 1: `exp` is whole seconds, so a 1 s token may expire before its first use.
    settings.JWT_CLIENT_LIFETIME = 2
    app, secret = live_app
    (user,) = enrolled(app)
    km = connect(app, secret, base_url=proxy.url)  # its clock stands still: it trusts the token
    km.send_push(str(user.id), "One", "x")
    stale = proxy.seen("/push/send")[0].bearer
    assert stale is not None
    expiry = jwt_claims(stale)["exp"]
    while time.time() < expiry + 0.05:  # until the server refuses the token (1-2 s)
        time.sleep(0.05)

    notification_id = km.send_push(str(user.id), "Two", "x")

    sends = proxy.seen("/push/send")
    assert [send.status for send in sends] == [202, 401, 202]
    assert sends[1].bearer == stale and sends[2].bearer not in (None, stale)
    assert len(proxy.seen("/oauth/token")) == 2
    assert notification_id in stored_ids(app) and len(stored_ids(app)) == 2
    assert sleeps == []  # a fresh token is not a backoff


def test_rotated_client_secret_fails_the_next_token_fetch_with_authentication_error(
    live_app, connect: Connect, proxy: FaultProxy, clock: FakeClock, sleeps: list[float]
) -> None:
    app, old_secret = live_app
    (user,) = enrolled(app)
    km = connect(app, old_secret, base_url=proxy.url)
    km.send_push(str(user.id), "Before", "x")

    new_secret = app_rotate_secret(app=app)
    clock.advance(3600)  # the cached token is due: the client must use its (old) secret again
    with pytest.raises(AuthenticationError) as refused:
        km.send_push(str(user.id), "After", "x")

    assert (refused.value.status, refused.value.code) == (401, "invalid_client")
    assert [grant.status for grant in proxy.seen("/oauth/token")] == [200, 401]
    assert len(proxy.seen("/push/send")) == 1  # nothing sent without a token
    assert sleeps == []  # wrong credentials are not retried
    assert connect(app, new_secret).send_push(str(user.id), "With the new secret", "x")


# --- Rate limits and retries -----------------------------------------------------------------


def test_spent_daily_quota_raises_quota_exceeded_at_once_with_the_wait_until_midnight_utc(
    live_app, connect: Connect, sleeps: list[float]
) -> None:
    if DAY - time.time() % DAY < 120:
        pytest.skip("within 2 minutes of 00:00 UTC, when the daily quota resets")
    app, secret = live_app
    push_config_update(app=app, actor=None, daily_quota=1)
    (user,) = enrolled(app)
    km = connect(app, secret)
    km.send_push(str(user.id), "First", "x")

    with pytest.raises(QuotaExceeded) as spent:
        km.send_push(str(user.id), "Second", "x")

    until_midnight = DAY - time.time() % DAY
    assert (spent.value.status, spent.value.code) == (429, "quota_exceeded")
    assert spent.value.retry_after is not None
    assert abs(spent.value.retry_after - until_midnight) <= 5
    assert sleeps == []  # hours away: more than max_retry_wait, so not waited for
    assert len(stored_ids(app)) == 1


def test_429_with_retry_after_is_waited_out_and_retried_with_the_same_idempotency_key(
    live_app, connect: Connect, proxy: FaultProxy, sleeps: list[float]
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    proxy.fail_next(
        "POST",
        "/push/send",
        429,
        headers={"Retry-After": "2", "Content-Type": "application/json"},
        body={"error": {"code": "rate_limited", "message": "Slow down."}},
    )
    km = connect(app, secret, base_url=proxy.url)

    notification_id = km.send_push(str(user.id), "Hi", "x")

    sends = proxy.seen("/push/send")
    assert [(send.status, send.forwarded) for send in sends] == [(429, False), (202, True)]
    assert sends[0].headers["idempotency-key"] == sends[1].headers["idempotency-key"]
    assert sleeps == [2.0]
    assert stored_ids(app) == {notification_id}


def test_503_after_the_server_accepted_is_retried_and_replayed_not_sent_twice(
    live_app, connect: Connect, proxy: FaultProxy, sleeps: list[float]
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    # The send reaches Keymaster, but the edge answers 503: the client cannot know it was stored.
    proxy.fail_next(
        "POST",
        "/push/send",
        503,
        headers={"Content-Type": "text/html"},
        body=b"<h1>503 Service Unavailable</h1>",
        forward=True,
    )
    km = connect(app, secret, base_url=proxy.url)

    notification_id = km.send_push(str(user.id), "Hi", "x")

    sends = proxy.seen("/push/send")
    assert [(send.status, send.forwarded) for send in sends] == [(503, True), (202, True)]
    key = sends[0].headers["idempotency-key"]
    assert key and sends[1].headers["idempotency-key"] == key
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5  # first backoff step, no Retry-After
    assert stored_ids(app) == {notification_id}  # the retry replayed the first answer


def test_503_with_retry_after_on_a_read_is_waited_out_then_answered(
    live_app, connect: Connect, proxy: FaultProxy, sleeps: list[float]
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    km = connect(app, secret, base_url=proxy.url)
    notification_id = km.send_push(str(user.id), "Hi", "x")
    path = f"/push/notifications/{notification_id}"
    proxy.fail_next("GET", path, 503, headers={"Retry-After": "7"}, body=b"maintenance")

    notification = km.get_notification(notification_id)

    assert notification.notification_id == notification_id
    assert [s.status for s in proxy.seen(path)] == [503, 200]
    assert sleeps == [7.0]


# --- Errors from the real server -------------------------------------------------------------


def test_empty_title_raises_validation_error_naming_the_title_field(
    live_app, connect: Connect, sleeps: list[float]
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)

    with pytest.raises(ValidationError) as invalid:
        connect(app, secret).send_push(str(user.id), "", "x")

    assert (invalid.value.status, invalid.value.code) == (400, "validation_error")
    assert set(invalid.value.fields) == {"title"} and invalid.value.fields["title"]
    assert sleeps == [] and stored_ids(app) == set()


def test_send_to_a_user_not_enrolled_raises_not_enrolled_with_their_ids(
    live_app, connect: Connect
) -> None:
    app, secret = live_app
    (member,) = enrolled(app)
    stranger = make_user()
    km = connect(app, secret)

    with pytest.raises(NotEnrolled) as single:
        km.send_push(str(stranger.id), "Hi", "x")
    with pytest.raises(NotEnrolled) as bulk:
        km.send_bulk([str(member.id), str(stranger.id)], "Hi", "x")

    assert (single.value.status, single.value.code) == (403, "not_enrolled")
    assert single.value.user_ids == [str(stranger.id)]
    assert bulk.value.user_ids == [str(stranger.id)]
    assert stored_ids(app) == set()  # a send is all or nothing


def test_app_with_push_off_gets_push_disabled(connect: Connect) -> None:
    app, secret = app_create(name="Push never enabled")
    (user,) = enrolled(app)

    with pytest.raises(PushDisabled) as disabled:
        connect(app, secret).send_push(str(user.id), "Hi", "x")

    assert (disabled.value.status, disabled.value.code) == (403, "push_disabled")


def test_reusing_an_idempotency_key_for_a_different_send_raises_idempotency_conflict(
    live_app, connect: Connect, sleeps: list[float]
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    km = connect(app, secret)
    first = km.send_push(str(user.id), "Hi", "x", idempotency_key="order-42")
    assert km.send_push(str(user.id), "Hi", "x", idempotency_key="order-42") == first  # replay

    with pytest.raises(IdempotencyConflict) as conflict:
        km.send_push(str(user.id), "Hi", "changed", idempotency_key="order-42")

    assert (conflict.value.status, conflict.value.code) == (422, "idempotency_key_reused")
    assert sleeps == [] and stored_ids(app) == {first}


def test_unknown_notification_raises_not_found(live_app, connect: Connect) -> None:
    app, secret = live_app

    with pytest.raises(NotFound) as missing:
        connect(app, secret).get_notification(str(uuid.uuid4()))

    assert (missing.value.status, missing.value.code) == (404, "not_found")


# --- Receipts --------------------------------------------------------------------------------


def test_receipt_posted_by_the_delivery_pipeline_passes_verify_webhook(
    fakes, webhook_fake: WebhookFake, live_app, connect: Connect
) -> None:
    app, secret = live_app
    config = push_config_update(
        app=app, actor=None, webhook_url=f"{webhook_fake.url}/hooks/push-receipts"
    )
    (user,) = enrolled(app)
    device = register(user, app, fcm_token("live-receipt"), "android")
    notification_id = connect(app, secret).send_push(str(user.id), "Shift", "Starts soon")

    drain()

    (posted,) = webhook_fake.received("/hooks/push-receipts")
    assert "webhook-signature" in posted.headers  # both signature schemes get checked
    receipt = verify_webhook(posted.body, posted.headers, config.webhook_secret)
    assert receipt == {
        "notification_id": notification_id,
        "user_id": str(user.id),
        "device_id": str(device.id),
        "app_id": str(app.app_id),
        "status": "delivered",
        "error": None,
        "timestamp": receipt["timestamp"],
    }
    with pytest.raises(WebhookVerificationError):
        verify_webhook(posted.body, posted.headers, webhook_secret_new())
    tampered = posted.body.replace(b'"delivered"', b'"failed"')
    assert tampered != posted.body
    with pytest.raises(WebhookVerificationError):
        verify_webhook(tampered, posted.headers, config.webhook_secret)


# --- The async client's own behaviour --------------------------------------------------------


def test_fifty_concurrent_async_calls_share_one_token_request(
    live_app, proxy: FaultProxy, clock: FakeClock
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    with KeymasterClient(proxy.url, app.client_id, secret) as sync_client:
        notification_id = sync_client.send_push(str(user.id), "Hi", "x")
    tokens_before = len(proxy.seen("/oauth/token"))

    async def fifty_reads() -> list[NotificationResult]:
        # Ten connections at most: the live server's threads each hold a database session.
        pool = httpx.AsyncClient(limits=httpx.Limits(max_connections=10))
        async with (
            pool,
            AsyncKeymasterClient(
                proxy.url, app.client_id, secret, http_client=pool, clock=clock
            ) as client,
        ):
            return await asyncio.gather(
                *(client.get_notification(notification_id) for _ in range(50))
            )

    notifications = asyncio.run(fifty_reads())

    assert {n.notification_id for n in notifications} == {notification_id}
    assert len(proxy.seen("/oauth/token")) - tokens_before == 1
    reads = proxy.seen(f"/push/notifications/{notification_id}")
    assert len(reads) == 50 and {r.status for r in reads} == {200}
    assert len({r.bearer for r in reads}) == 1


def test_both_clients_return_the_same_typed_results(
    fakes, live_server, live_app, event_loop_for_client: asyncio.AbstractEventLoop
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    register(user, app, fcm_token("typed"), "android")
    sync_client = KeymasterClient(live_server.url, app.client_id, secret)
    notification_id = sync_client.send_push(str(user.id), "Typed", "x", data={"k": "v"})
    drain()

    async def read() -> NotificationResult:
        async with AsyncKeymasterClient(live_server.url, app.client_id, secret) as client:
            return await client.get_notification(notification_id)

    from_async = event_loop_for_client.run_until_complete(read())
    from_sync = sync_client.get_notification(notification_id)
    sync_client.close()

    assert from_sync == from_async
    assert isinstance(from_sync, NotificationResult)
    assert from_sync.created_at.tzinfo is not None
    assert from_sync.status == "delivered"
    assert isinstance(from_sync.deliveries[0], Delivery)
    assert isinstance(from_sync.deliveries[0].updated_at, datetime)


def test_command_line_sends_and_reads_back_from_the_live_server(live_server, live_app) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    register(user, app)
    env = {
        "KEYMASTER_URL": live_server.url,
        "KEYMASTER_CLIENT_ID": app.client_id,
        "KEYMASTER_CLIENT_SECRET": secret,
    }

    def keymaster(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(argv), env=env, stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    code, out, err = keymaster(
        "send", "--user", str(user.id), "--title", "CLI", "--body", "x", "--data", "k=v", "--json"
    )
    assert (code, err) == (cli.EXIT_OK, "")
    notification_id = json.loads(out)["notification_id"]
    assert stored_ids(app) == {notification_id}

    code, out, _ = keymaster("status", notification_id, "--json")
    shown = json.loads(out)
    assert code == cli.EXIT_OK
    assert (shown["status"], shown["title"], shown["data"]) == ("queued", "CLI", {"k": "v"})

    code, _, err = keymaster("status", str(uuid.uuid4()))
    assert code == cli.EXIT_NOT_FOUND and "not_found" in err
    code, _, _ = keymaster("send", "--user", str(make_user().id), "--title", "T", "--body", "B")
    assert code == cli.EXIT_FORBIDDEN  # not enrolled


# --- Devices, scheduling, broadcasts and topics ------------------------------------------------


def test_list_devices_and_iter_devices_read_the_apps_own_devices_page_by_page(
    live_app, connect: Connect
) -> None:
    app, secret = live_app
    first, second = enrolled(app, 2)
    mine = [register(first, app, fcm_token(f"ld-{n}"), "android") for n in range(3)]
    mine.append(register(second, app, fcm_token("ld-ios"), "ios"))
    other_app, _ = app_create(name="Someone else's app")
    enable_push(other_app)
    enroll(other_app, first)
    register(first, other_app, fcm_token("ld-other"), "android")
    km = connect(app, secret)

    page = km.list_devices(str(app.app_id), limit=3)
    walked = list(km.iter_devices(str(app.app_id), page_size=3))
    ios = km.list_devices(str(app.app_id), platform="ios")

    assert len(page.devices) == 3 and (page.page.total, page.page.next_offset) == (4, 3)
    assert sorted(d.device_id for d in walked) == sorted(str(d.id) for d in mine)
    assert [(d.user_id, d.platform) for d in ios.devices] == [(str(second.id), "ios")]
    assert len(list(km.iter_devices(str(app.app_id), user_id=str(first.id)))) == 3
    with pytest.raises(NotFound):  # another app's devices are not this app's to read
        km.list_devices(str(other_app.app_id))


def test_command_line_lists_the_apps_devices_from_the_live_server(live_server, live_app) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    device = register(user, app, fcm_token("cli-devices"), "android")
    env = {
        "KEYMASTER_URL": live_server.url,
        "KEYMASTER_CLIENT_ID": app.client_id,
        "KEYMASTER_CLIENT_SECRET": secret,
    }
    out, err = io.StringIO(), io.StringIO()

    code = cli.main(
        ["devices", "--app-id", str(app.app_id), "--json"], env=env, stdout=out, stderr=err
    )

    assert (code, err.getvalue()) == (cli.EXIT_OK, "")
    assert [d["device_id"] for d in json.loads(out.getvalue())] == [str(device.id)]


def test_send_at_is_scheduled_and_cancel_notification_cancels_it_once_and_again(
    live_app, connect: Connect
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    register(user, app)
    km = connect(app, secret)
    later = datetime.now(tz=UTC) + timedelta(hours=2)

    notification_id = km.send_push(str(user.id), "Shift", "In two hours", send_at=later)

    scheduled = km.get_notification(notification_id)
    assert scheduled.status == "scheduled" and scheduled.send_at is not None
    assert abs((scheduled.send_at - later).total_seconds()) < 1
    canceled = km.cancel_notification(notification_id)
    assert (canceled.notification_id, canceled.status) == (notification_id, "canceled")
    assert km.cancel_notification(notification_id).status == "canceled"  # idempotent
    assert km.get_notification(notification_id).status == "canceled"
    with pytest.raises(NotFound):
        km.cancel_notification(str(uuid.uuid4()))


def test_cancel_notification_after_delivery_raises_not_cancelable_with_its_status(
    fakes, live_app, connect: Connect
) -> None:
    app, secret = live_app
    (user,) = enrolled(app)
    register(user, app, fcm_token("live-cancel-late"), "android")
    km = connect(app, secret)
    notification_id = km.send_push(str(user.id), "Now", "x")
    drain()

    with pytest.raises(NotCancelable) as late:
        km.cancel_notification(notification_id)

    assert (late.value.status, late.value.code) == (409, "not_cancelable")
    assert late.value.notification_status == "delivered"


def test_broadcast_reaches_every_enrolled_user_with_a_device_and_cancel_broadcast_stops_it(
    live_app, connect: Connect
) -> None:
    app, secret = live_app
    enrolled_with_phones(app, 3, "bc")
    enrolled(app)  # enrolled, but without a device: not a recipient
    km = connect(app, secret)

    dry = km.broadcast("Gym", "Closes early", dry_run=True)
    assert (dry.broadcast_id, dry.recipients) == (None, 3)
    assert km.broadcast("Gym", "x", platforms=["ios"], dry_run=True).recipients == 1
    assert stored_ids(app) == set()

    later = datetime.now(tz=UTC) + timedelta(hours=1)
    accepted = km.broadcast("Gym", "Closes early", data={"k": "v"}, send_at=later)
    assert accepted.broadcast_id and accepted.recipients == 3
    drain(due_only=True)  # the fan-out: one scheduled notification per recipient

    shown = km.get_broadcast(accepted.broadcast_id)
    assert (shown.broadcast_id, shown.recipients) == (accepted.broadcast_id, 3)
    assert shown.send_at is not None and abs((shown.send_at - later).total_seconds()) < 1
    assert shown.counts.scheduled == 3 and shown.counts.canceled == 0
    (one, *_) = stored_ids(app)
    assert km.get_notification(one).broadcast_id == accepted.broadcast_id

    assert km.cancel_broadcast(accepted.broadcast_id) is None
    after = km.get_broadcast(accepted.broadcast_id)
    assert (after.status, after.counts.canceled, after.counts.scheduled) == ("canceled", 3, 0)
    with pytest.raises(NotFound):
        km.get_broadcast(str(uuid.uuid4()))


def test_topic_members_are_managed_listed_paged_and_broadcast_to(
    live_app, connect: Connect
) -> None:
    app, secret = live_app
    users = enrolled_with_phones(app, 5, "tp")
    ids = [str(user.id) for user in users]
    stranger = make_user()
    km = connect(app, secret)

    assert km.add_topic_members("night-shift", ids) == Topic(topic="night-shift", members=5)
    assert km.remove_topic_members("night-shift", ids[:1]).members == 4
    changed = km.update_topic_members("night-shift", add=ids[:1], remove=ids[1:2])
    assert changed.members == 4
    assert km.add_topic_members("day.shift", ids[:2]).members == 2
    with pytest.raises(NotEnrolled) as refused:
        km.add_topic_members("night-shift", [str(stranger.id)])
    assert refused.value.user_ids == [str(stranger.id)]

    assert sorted(km.list_topics(), key=lambda t: t.topic) == [
        Topic(topic="day.shift", members=2),
        Topic(topic="night-shift", members=4),
    ]
    first = km.topic_members("night-shift", limit=3)
    assert len(first.user_ids) == 3 and (first.page.total, first.page.next_offset) == (4, 3)
    members = list(km.iter_topic_members("night-shift", page_size=3))
    assert sorted(members) == sorted([ids[0], *ids[2:]])
    assert km.broadcast("Night", "x", topic="night-shift", dry_run=True).recipients == 4

    assert km.delete_topic("day.shift") is None
    assert [t.topic for t in km.list_topics()] == ["night-shift"]
    with pytest.raises(NotFound):
        km.topic_members("day.shift")
