"""KeymasterClient: send push notifications through the Keymaster API (blocking, on requests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

import requests
from requests.__version__ import __version__ as requests_version

from keymaster_client import _endpoints as api
from keymaster_client._core import (
    TOKEN_PATH,
    Attempt,
    Call,
    Done,
    Reauthenticate,
    RetryPolicy,
    TokenCache,
    user_agent,
)
from keymaster_client._endpoints import DEFAULT_BATCH_SIZE, DEFAULT_PAGE_SIZE
from keymaster_client._response import RawResponse
from keymaster_client.errors import KeymasterConnectionError, KeymasterError
from keymaster_client.models import (
    Broadcast,
    BroadcastAccepted,
    Cancellation,
    Device,
    DevicePage,
    Message,
    Notification,
    Topic,
    TopicMembers,
)
from keymaster_client.oauth import ClientCredentials

T = TypeVar("T")

USER_AGENT = user_agent(f"requests/{requests_version}")

# Failures where the request may not have reached the server, or its answer was lost.
# Retrying them is safe because every send carries an Idempotency-Key.
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class KeymasterClient:
    """Send push notifications as one app, authenticated with its client credentials.

    Each call fetches (or reuses) a `push:send` access token, retries connection failures,
    429s and 5xx with exponential backoff (full jitter; a Retry-After is honoured), and
    raises a `KeymasterError` subclass otherwise. Sends carry an Idempotency-Key (generated
    when not given) that stays the same across the client's retries, so a retried send is
    delivered once. `AsyncKeymasterClient` has the same methods, for asyncio.

    Thread safety: one client may be shared by threads. The token cache is guarded by a
    lock and all per-call state lives on the call's stack. Calls go through one shared
    `requests.Session`; requests does not formally promise that a Session is thread-safe,
    though concurrent requests through one work in practice (urllib3's connection pool is
    thread-safe, and the client itself changes nothing on the session once built). If you
    need the strict guarantee, give each thread its own client.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float | tuple[float, float] = 10,
        max_retries: int = 3,
        max_retry_wait: float = 60,
        session: requests.Session | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Configure the client; no request is made until the first call.

        `max_retries` counts retries after the first attempt. A Retry-After longer than
        `max_retry_wait` seconds is not waited for: the error is raised at once. `sleep`
        and `clock` (monotonic seconds) exist so tests need not wait.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._timeout = timeout
        self._policy = RetryPolicy(max_retries, max_retry_wait)
        self._batch_size = batch_size
        self._sleep = sleep
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        cache = TokenCache(client_id, client_secret)
        self._credentials = ClientCredentials(
            cache,
            fetch=lambda: self._send(
                "POST", TOKEN_PATH, {}, auth=cache.basic_auth, data=cache.form
            ),
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"KeymasterClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    def __enter__(self) -> KeymasterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session, if the client created it."""
        if self._owns_session:
            self._session.close()

    # --- Sending ---------------------------------------------------------------------------

    @overload
    def send_push(
        self,
        user_id: str,
        title: str,
        body: str,
        data: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        *,
        idempotency_key: str | None = None,
        priority: str | None = None,
        collapse_key: str | None = None,
        urgency: str | None = None,
        send_at: datetime | str | None = None,
        dry_run: Literal[False] = False,
    ) -> str: ...

    @overload
    def send_push(
        self,
        user_id: str,
        title: str,
        body: str,
        data: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        *,
        idempotency_key: str | None = None,
        priority: str | None = None,
        collapse_key: str | None = None,
        urgency: str | None = None,
        send_at: datetime | str | None = None,
        dry_run: Literal[True],
    ) -> None: ...

    @overload
    def send_push(
        self,
        user_id: str,
        title: str,
        body: str,
        data: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        *,
        idempotency_key: str | None = None,
        priority: str | None = None,
        collapse_key: str | None = None,
        urgency: str | None = None,
        send_at: datetime | str | None = None,
        dry_run: bool = False,
    ) -> str | None: ...

    def send_push(
        self,
        user_id: str,
        title: str,
        body: str,
        data: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        *,
        idempotency_key: str | None = None,
        priority: str | None = None,
        collapse_key: str | None = None,
        urgency: str | None = None,
        send_at: datetime | str | None = None,
        dry_run: bool = False,
    ) -> str | None:
        """Send one notification to every device of `user_id`; return its notification id.

        `send_at` (an aware datetime or RFC 3339 text) schedules it. With `dry_run=True` the
        server validates the send (enrollment, quota) without storing or delivering
        anything, and there is no id: None is returned.
        """
        return self._run(
            api.send_push(
                user_id,
                title=title,
                body=body,
                data=data,
                ttl=ttl,
                priority=priority,
                collapse_key=collapse_key,
                urgency=urgency,
                send_at=send_at,
                idempotency_key=idempotency_key,
                dry_run=dry_run,
            )
        )

    def send_bulk(
        self,
        user_ids: Sequence[str],
        title: str,
        body: str,
        data: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        *,
        idempotency_key: str | None = None,
        batch_size: int | None = None,
        priority: str | None = None,
        collapse_key: str | None = None,
        urgency: str | None = None,
        send_at: datetime | str | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Send the same notification to each of `user_ids`; return ids in the same order.

        Lists longer than the batch size go out as several requests, each with its own
        Idempotency-Key derived from the send's key (`{key}:{chunk index}`). A dry run
        only validates, and returns an empty list.
        """
        return self._run_chunks(
            api.send_bulk(
                user_ids,
                title=title,
                body=body,
                data=data,
                ttl=ttl,
                priority=priority,
                collapse_key=collapse_key,
                urgency=urgency,
                send_at=send_at,
                idempotency_key=idempotency_key,
                batch_size=batch_size or self._batch_size,
                dry_run=dry_run,
            )
        )

    def send_batch(
        self,
        notifications: Sequence[Message | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        batch_size: int | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Send a different notification to each user; return ids in the same order.

        Each item holds `user_id`, `title`, `body` and optionally `data`, `ttl`, `send_at`,
        .... Long lists are split as in `send_bulk`; a dry run returns an empty list.
        """
        return self._run_chunks(
            api.send_batch(
                notifications,
                idempotency_key=idempotency_key,
                batch_size=batch_size or self._batch_size,
                dry_run=dry_run,
            )
        )

    def broadcast(
        self,
        title: str,
        body: str,
        data: Mapping[str, Any] | None = None,
        ttl: int | None = None,
        *,
        topic: str | None = None,
        platforms: Collection[str] | None = None,
        idempotency_key: str | None = None,
        priority: str | None = None,
        collapse_key: str | None = None,
        urgency: str | None = None,
        send_at: datetime | str | None = None,
        dry_run: bool = False,
    ) -> BroadcastAccepted:
        """Send to every enrolled user with a device (of `platforms`; in `topic`).

        Answers at once with the broadcast's id and recipient count; the notifications are
        created in the background. A dry run tells the count without sending.
        """
        return self._run(
            api.broadcast(
                title=title,
                body=body,
                data=data,
                ttl=ttl,
                topic=topic,
                platforms=platforms,
                priority=priority,
                collapse_key=collapse_key,
                urgency=urgency,
                send_at=send_at,
                idempotency_key=idempotency_key,
                dry_run=dry_run,
            )
        )

    # --- Notifications and broadcasts ------------------------------------------------------

    def get_notification(self, notification_id: str) -> Notification:
        """Return a notification and the state of its delivery to each device."""
        return self._run(api.get_notification(notification_id))

    def cancel_notification(self, notification_id: str) -> Cancellation:
        """Cancel a scheduled (or still queued) notification; raises NotCancelable once sent."""
        return self._run(api.cancel_notification(notification_id))

    def get_broadcast(self, broadcast_id: str) -> Broadcast:
        """Return a broadcast with the count of its notifications in each state."""
        return self._run(api.get_broadcast(broadcast_id))

    def cancel_broadcast(self, broadcast_id: str) -> None:
        """Cancel every notification of a broadcast not yet handed to a provider."""
        self._run(api.cancel_broadcast(broadcast_id))

    # --- Topics ----------------------------------------------------------------------------

    def update_topic_members(
        self, topic: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> Topic:
        """Add and remove members (enrolled users; at most 10,000 ids a call)."""
        return self._run(api.update_topic_members(topic, add=add, remove=remove))

    def add_topic_members(self, topic: str, user_ids: Sequence[str]) -> Topic:
        return self.update_topic_members(topic, add=user_ids)

    def remove_topic_members(self, topic: str, user_ids: Sequence[str]) -> Topic:
        return self.update_topic_members(topic, remove=user_ids)

    def list_topics(self) -> list[Topic]:
        """Return the app's topics with their member counts."""
        return self._run(api.list_topics())

    def topic_members(
        self, topic: str, *, limit: int = DEFAULT_PAGE_SIZE, offset: int = 0
    ) -> TopicMembers:
        """Return one page of a topic's members."""
        return self._run(api.topic_members(topic, limit=limit, offset=offset))

    def iter_topic_members(
        self, topic: str, *, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[str]:
        """Yield every member of a topic, fetching a page at a time."""
        offset: int | None = 0
        while offset is not None:
            members = self.topic_members(topic, limit=page_size, offset=offset)
            yield from members.user_ids
            offset = members.page.next_offset if members.user_ids else None

    def delete_topic(self, topic: str) -> None:
        self._run(api.delete_topic(topic))

    # --- Devices ---------------------------------------------------------------------------

    def list_devices(
        self,
        app_id: str,
        *,
        platform: str | None = None,
        user_id: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
    ) -> DevicePage:
        """Return one page of the app's devices (`GET /push/devices/{app_id}`)."""
        return self._run(
            api.list_devices(app_id, platform=platform, user_id=user_id, limit=limit, offset=offset)
        )

    def iter_devices(
        self,
        app_id: str,
        *,
        platform: str | None = None,
        user_id: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[Device]:
        """Yield every device of the app, fetching a page at a time."""
        offset: int | None = 0
        while offset is not None:
            page = self.list_devices(
                app_id, platform=platform, user_id=user_id, limit=page_size, offset=offset
            )
            yield from page.devices
            offset = page.page.next_offset if page.devices else None

    def unregister_device(self, device_id: str) -> None:
        """Remove a device registration of this app's users."""
        self._run(api.unregister_device(device_id))

    # --- I/O -------------------------------------------------------------------------------

    def _run_chunks(self, plan: api.ChunkPlan) -> list[str]:
        ids: list[str] = []
        for index, call in enumerate(plan.calls):
            try:
                sent: list[str] = self._run(call)
                ids.extend(sent)
            except KeymasterError as exc:
                plan.failed(exc, index, ids)
                raise
        return ids

    def _run(self, call: Call[T]) -> T:
        """Make one API call with auth, retries and error mapping; return its result."""
        attempt = Attempt(call, self._policy)
        while True:
            try:
                token = self._credentials.token()
                raw = self._send(
                    call.method,
                    call.path,
                    attempt.headers(token),
                    json=call.json,
                    params=dict(call.params) or None,
                )
                step = attempt.answered(raw, token)
            except KeymasterError as exc:
                step = attempt.failed(exc)
            if isinstance(step, Done):
                return step.value
            if isinstance(step, Reauthenticate):
                self._credentials.invalidate(step.token)
                continue
            self._sleep(step.wait)

    def _send(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> RawResponse:
        """Perform one HTTP request; transport failures become `KeymasterConnectionError`."""
        url = self.base_url + path
        try:
            response = self._session.request(
                method,
                url,
                headers={"User-Agent": USER_AGENT, **headers},
                timeout=self._timeout,
                **kwargs,
            )
        except _TRANSIENT as exc:
            raise KeymasterConnectionError(f"{method} {url} failed: {exc}") from exc
        with response:
            return RawResponse.of(
                response.status_code, response.content, response.headers, response.reason or ""
            )
