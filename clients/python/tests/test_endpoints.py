"""The endpoints beyond single sends, for both clients against the stub: scheduling, cancel,
broadcasts, topics and device listing (requests as issue #19 and the device API specify them,
answers parsed into the typed results)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from stub_server import FakeClock, Recorded, Reply, StubServer, api_error

from keymaster_client import (
    AsyncKeymasterClient,
    Broadcast,
    BroadcastAccepted,
    BroadcastCounts,
    Cancellation,
    Device,
    KeymasterError,
    NotCancelable,
    NotEnrolled,
    NotFound,
    Page,
    QuotaExceeded,
    Topic,
)

MakeClient = Callable[..., Any]
PARIS = timezone(timedelta(hours=1))


# --- Send later ------------------------------------------------------------------------------


def test_send_at_is_sent_as_rfc3339_with_its_offset(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/send", Reply(202, {"notification_id": "n-1"}))
    stub.install("POST", "/push/send/bulk", Reply(202, {"notification_ids": ["n-a"]}))
    stub.install("POST", "/push/send/batch", Reply(202, {"notification_ids": ["n-b"]}))
    client = make_client()
    at = datetime(2026, 12, 24, 8, 0, tzinfo=PARIS)

    assert client.send_push("u1", "Hi", "There", send_at=at) == "n-1"
    assert client.send_bulk(["a"], "Hi", "There", send_at="2026-12-24T07:00:00Z") == ["n-a"]
    assert client.send_batch([{"user_id": "b", "title": "T", "body": "B", "send_at": at}]) == [
        "n-b"
    ]

    assert stub.to("/push/send")[0].json["send_at"] == "2026-12-24T08:00:00+01:00"
    assert stub.to("/push/send/bulk")[0].json["send_at"] == "2026-12-24T07:00:00Z"
    (item,) = stub.to("/push/send/batch")[0].json["notifications"]
    assert item["send_at"] == "2026-12-24T08:00:00+01:00"


def test_naive_send_at_is_refused_before_any_request(
    stub: StubServer, make_client: MakeClient
) -> None:
    with pytest.raises(ValueError, match="timezone"):
        make_client().send_push("u1", "Hi", "There", send_at=datetime(2026, 12, 24, 8, 0))

    assert stub.requests == []


def test_scheduled_notification_reads_status_and_send_at(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install(
        "GET",
        "/push/notifications/n-1",
        Reply(
            200,
            {
                "notification_id": "n-1",
                "app_id": "app-1",
                "user_id": "u1",
                "title": "Hi",
                "body": "There",
                "data": {"k": "v"},
                "ttl": 60,
                "status": "scheduled",
                "created_at": "2026-12-23T10:00:00.123456Z",
                "send_at": "2026-12-24T08:00:00+01:00",
                "completed_at": None,
                "broadcast_id": "b-1",
                "deliveries": [],
            },
        ),
    )

    notification = make_client().get_notification("n-1")

    assert notification.status == "scheduled"
    assert notification.send_at == datetime(2026, 12, 24, 7, 0, tzinfo=timezone.utc)
    assert notification.created_at.microsecond == 123456
    assert notification.broadcast_id == "b-1"
    assert notification.data == {"k": "v"}
    assert notification.deliveries == ()


# --- Cancel ----------------------------------------------------------------------------------


def test_cancel_notification_posts_to_its_cancel_path(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install(
        "POST",
        "/push/notifications/n-1/cancel",
        Reply(200, {"notification_id": "n-1", "status": "canceled"}),
    )

    assert make_client().cancel_notification("n-1") == Cancellation("n-1", "canceled")
    (request,) = stub.to("/push/notifications/n-1/cancel")
    assert request.body == b""


def test_cancel_after_handoff_raises_not_cancelable_with_the_current_status(
    stub: StubServer, make_client: MakeClient, sleeps: list[float]
) -> None:
    stub.install(
        "POST",
        "/push/notifications/n-1/cancel",
        Reply(409, {"error": {"code": "not_cancelable", "status": "delivered"}}),
    )

    with pytest.raises(NotCancelable) as caught:
        make_client().cancel_notification("n-1")

    assert caught.value.status == 409
    assert caught.value.notification_status == "delivered"
    assert sleeps == []


def test_cancel_of_another_apps_notification_is_not_found(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/notifications/n-9/cancel", api_error(404, "not_found"))

    with pytest.raises(NotFound):
        make_client().cancel_notification("n-9")


# --- Broadcasts ------------------------------------------------------------------------------


def test_broadcast_sends_content_audience_and_a_key(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install(
        "POST", "/push/send/broadcast", Reply(202, {"broadcast_id": "b-1", "recipients": 20000})
    )

    accepted = make_client().broadcast(
        "Gym closes early",
        "Closing at 6pm",
        {"route": "/hours"},
        topic="members.downtown",
        platforms=["web", "android"],
        priority="high",
        send_at=datetime(2026, 12, 24, 8, 0, tzinfo=PARIS),
    )

    assert accepted == BroadcastAccepted(broadcast_id="b-1", recipients=20000)
    (request,) = stub.to("/push/send/broadcast")
    assert request.json == {
        "title": "Gym closes early",
        "body": "Closing at 6pm",
        "data": {"route": "/hours"},
        "topic": "members.downtown",
        "platforms": ["android", "web"],
        "priority": "high",
        "send_at": "2026-12-24T08:00:00+01:00",
    }
    assert len(request.headers["idempotency-key"]) == 36


def test_broadcast_dry_run_tells_the_count_without_an_id(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install(
        "POST", "/push/send/broadcast", Reply(200, {"broadcast_id": None, "recipients": 7})
    )

    assert make_client().broadcast("T", "B", dry_run=True) == BroadcastAccepted(None, 7)
    assert stub.to("/push/send/broadcast")[0].json == {"title": "T", "body": "B", "dry_run": True}


def test_broadcast_over_the_quota_raises_quota_exceeded(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install(
        "POST",
        "/push/send/broadcast",
        api_error(429, "quota_exceeded", "20000 recipients, 150 left today"),
    )

    with pytest.raises(QuotaExceeded, match="150 left"):
        make_client(max_retries=0).broadcast("T", "B")


def test_broadcast_rejects_unknown_platforms_before_sending(
    stub: StubServer, make_client: MakeClient
) -> None:
    with pytest.raises(ValueError, match="platforms"):
        make_client().broadcast("T", "B", platforms=["web", "windows"])

    assert stub.requests == []


def test_get_broadcast_reads_counts(stub: StubServer, make_client: MakeClient) -> None:
    stub.install(
        "GET",
        "/push/broadcasts/b-1",
        Reply(
            200,
            {
                "broadcast_id": "b-1",
                "status": "sending",
                "recipients": 10,
                "created_at": "2026-12-23T10:00:00Z",
                "send_at": None,
                "counts": {
                    "scheduled": 0,
                    "queued": 3,
                    "delivered": 4,
                    "failed": 1,
                    "canceled": 0,
                    "muted": 2,
                },
            },
        ),
    )

    assert make_client().get_broadcast("b-1") == Broadcast(
        broadcast_id="b-1",
        status="sending",
        recipients=10,
        created_at=datetime(2026, 12, 23, 10, 0, tzinfo=timezone.utc),
        send_at=None,
        counts=BroadcastCounts(queued=3, delivered=4, failed=1, muted=2),
    )


def test_cancel_broadcast_posts_to_its_cancel_path(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("POST", "/push/broadcasts/b-1/cancel", Reply(200, {"broadcast_id": "b-1"}))

    assert make_client().cancel_broadcast("b-1") is None
    assert len(stub.to("/push/broadcasts/b-1/cancel")) == 1


# --- Topics ----------------------------------------------------------------------------------


def test_topic_members_are_added_and_removed_in_one_call(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install(
        "POST",
        "/push/topics/night-shift/members",
        Reply(200, {"topic": "night-shift", "members": 2}),
    )
    client = make_client()

    assert client.update_topic_members("night-shift", add=["u1", "u2"], remove=["u3"]) == Topic(
        "night-shift", 2
    )
    assert client.add_topic_members("night-shift", ["u4"]).members == 2
    assert client.remove_topic_members("night-shift", ["u4"]).topic == "night-shift"

    bodies = [r.json for r in stub.to("/push/topics/night-shift/members")]
    assert bodies == [
        {"add": ["u1", "u2"], "remove": ["u3"]},
        {"add": ["u4"], "remove": []},
        {"add": [], "remove": ["u4"]},
    ]


def test_adding_users_not_enrolled_raises_not_enrolled_listing_them(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install(
        "POST",
        "/push/topics/t/members",
        api_error(403, "not_enrolled", user_ids=["u9"]),
    )

    with pytest.raises(NotEnrolled) as caught:
        make_client().add_topic_members("t", ["u1", "u9"])

    assert caught.value.user_ids == ["u9"]


@pytest.mark.parametrize("name", ["", "a" * 65, "has space", "slash/es", "ünïcode"])
def test_invalid_topic_names_are_refused_before_any_request(
    stub: StubServer, make_client: MakeClient, name: str
) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="topic name"):
        client.add_topic_members(name, ["u1"])
    with pytest.raises(ValueError, match="topic name"):
        client.broadcast("T", "B", topic=name)

    assert stub.requests == []


def test_list_topics_and_delete_topic(stub: StubServer, make_client: MakeClient) -> None:
    stub.install(
        "GET",
        "/push/topics",
        Reply(
            200,
            {"topics": [{"topic": "a", "members": 1}, {"topic": "b.c", "members": 0}], "total": 2},
        ),
    )
    stub.install("DELETE", "/push/topics/b.c", Reply(204))
    client = make_client()

    assert client.list_topics() == [Topic("a", 1), Topic("b.c", 0)]
    assert client.delete_topic("b.c") is None
    assert len(stub.to("/push/topics/b.c")) == 1


def pages_of(items: list[Any], key: str, total: str = "total") -> Callable[[Recorded], Reply]:
    """Answer a `?limit=&offset=` listing of `items` as the server's pages."""

    def answer(request: Recorded) -> Reply:
        limit, offset = int(request.query["limit"]), int(request.query["offset"])
        page = items[offset : offset + limit]
        return Reply(200, {key: page, total: len(items), "limit": limit, "offset": offset})

    return answer


def test_iter_topic_members_walks_every_page(stub: StubServer, make_client: MakeClient) -> None:
    members = [f"u{i}" for i in range(7)]
    stub.install("GET", "/push/topics/t/members", pages_of(members, "user_ids", total="members"))
    client = make_client()

    first = client.topic_members("t", limit=3)
    everyone = client.iter_topic_members("t", page_size=3)

    assert first.user_ids == ("u0", "u1", "u2")
    assert first.page == Page(total=7, limit=3, offset=0)
    assert list(everyone) == members
    offsets = [r.query["offset"] for r in stub.to("/push/topics/t/members")]
    assert offsets == ["0", "0", "3", "6"]


# --- Devices ---------------------------------------------------------------------------------


def device(number: int) -> dict[str, Any]:
    return {
        "device_id": f"d{number}",
        "user_id": "u1",
        "platform": "web",
        "label": "Firefox on Linux",
        "created_at": "2026-12-01T09:00:00Z",
        "last_seen_at": "2026-12-02T09:00:00+00:00",
    }


def test_list_devices_sends_filters_and_reads_a_page(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install(
        "GET",
        "/push/devices/app-uuid",
        Reply(200, {"devices": [device(1)], "total": 1, "limit": 50, "offset": 0}),
    )

    page = make_client().list_devices("app-uuid", platform="web", user_id="u1", limit=50)

    assert page.devices == (
        Device(
            device_id="d1",
            user_id="u1",
            platform="web",
            label="Firefox on Linux",
            created_at=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc),
            last_seen_at=datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc),
        ),
    )
    assert page.page.next_offset is None
    (request,) = stub.to("/push/devices/app-uuid")
    assert request.query == {"limit": "50", "offset": "0", "platform": "web", "user_id": "u1"}


def test_iter_devices_walks_every_page(stub: StubServer, make_client: MakeClient) -> None:
    stub.install(
        "GET", "/push/devices/app-uuid", pages_of([device(i) for i in range(5)], "devices")
    )

    ids = [d.device_id for d in make_client().iter_devices("app-uuid", page_size=2)]

    assert ids == ["d0", "d1", "d2", "d3", "d4"]


def test_an_answer_missing_a_field_is_an_unexpected_response_error(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("GET", "/push/broadcasts/b-1", Reply(200, {"broadcast_id": "b-1"}))

    with pytest.raises(KeymasterError) as caught:
        make_client().get_broadcast("b-1")

    assert caught.value.code == "unexpected_response"


def test_a_listing_whose_items_are_not_a_list_is_an_unexpected_response_error(
    stub: StubServer, make_client: MakeClient
) -> None:
    stub.install("GET", "/push/devices/app-uuid", Reply(200, {"devices": {}, "total": 0}))

    with pytest.raises(KeymasterError, match="'devices' is not a list") as caught:
        make_client().list_devices("app-uuid")

    assert caught.value.code == "unexpected_response"


# --- The async client's own concurrency ------------------------------------------------------


def test_fifty_concurrent_async_calls_share_one_token_request(
    stub: StubServer, clock: FakeClock
) -> None:
    stub.token_delay = 0.2  # every task finds no token while the first fetch is in flight
    stub.install("POST", "/push/send", Reply(202, {"notification_id": "n-1"}))

    async def main() -> list[str]:
        async with AsyncKeymasterClient(
            stub.url, stub.client_id, stub.client_secret, clock=clock
        ) as client:
            return await asyncio.gather(
                *(client.send_push(f"u{i}", "Hi", "There") for i in range(50))
            )

    assert asyncio.run(main()) == ["n-1"] * 50
    assert len(stub.to("/oauth/token")) == 1
    assert len(stub.to("/push/send")) == 50


def test_async_client_closes_its_pool_on_exit(stub: StubServer) -> None:
    async def main() -> AsyncKeymasterClient:
        async with AsyncKeymasterClient(stub.url, "app-1", "secret-1") as client:
            pass
        return client

    client = asyncio.run(main())

    assert client._http.is_closed
