"""KeymasterClient: send push notifications through the Keymaster API."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, overload
from urllib.parse import quote

import requests

from keymaster_client._version import __version__
from keymaster_client.errors import (
    ConnectionError,
    KeymasterError,
    NotFound,
    RateLimited,
    ServerError,
    error_from_response,
    offset_field_paths,
)
from keymaster_client.models import Message, Notification
from keymaster_client.oauth import ClientCredentials
from keymaster_client.retry import BACKOFF_CAP, backoff_delay

logger = logging.getLogger(__name__)

# The server's PUSH_MAX_BATCH_SIZE default; pass batch_size if yours is configured lower.
DEFAULT_BATCH_SIZE = 500
# The server refuses longer keys; keys derived for chunks must stay within it.
MAX_IDEMPOTENCY_KEY_LENGTH = 255
USER_AGENT = f"keymaster-client-python/{__version__} requests/{requests.__version__}"

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
    429s and 5xx with exponential backoff, and raises a `KeymasterError` subclass otherwise.
    Sends carry an Idempotency-Key (generated when not given) that stays the same across
    the client's retries, so a retried send is delivered once.

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
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._batch_size = batch_size
        self._sleep = sleep
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._credentials = ClientCredentials(
            f"{self.base_url}/oauth/token",
            client_id,
            client_secret,
            send=self._send,
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
        dry_run: bool = False,
    ) -> str | None:
        """Send one notification to every device of `user_id`; return its notification id.

        With `dry_run=True` the server validates the send (enrollment, quota) without
        storing or delivering anything, and there is no id: None is returned.
        """
        payload = _message_fields(
            user_id=user_id,
            title=title,
            body=body,
            data=data,
            ttl=ttl,
            priority=priority,
            collapse_key=collapse_key,
            urgency=urgency,
            dry_run=dry_run,
        )
        answer = self._request(
            "POST", "/push/send", json=payload, idempotency_key=idempotency_key or _new_key()
        )
        if dry_run:
            return None
        return _expect_str(answer, "notification_id")

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
        dry_run: bool = False,
    ) -> list[str]:
        """Send the same notification to each of `user_ids`; return ids in the same order.

        Lists longer than the batch size go out as several requests, each with its own
        Idempotency-Key derived from the send's key (`{key}:{chunk index}`). A dry run
        only validates, and returns an empty list.
        """
        if isinstance(user_ids, str):
            raise TypeError("user_ids must be a list of ids, not a string")
        common = _message_fields(
            title=title,
            body=body,
            data=data,
            ttl=ttl,
            priority=priority,
            collapse_key=collapse_key,
            urgency=urgency,
            dry_run=dry_run,
        )
        return self._send_chunked(
            "/push/send/bulk",
            "user_ids",
            list(user_ids),
            common,
            idempotency_key=idempotency_key,
            batch_size=batch_size,
            dry_run=dry_run,
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

        Each item holds `user_id`, `title`, `body` and optionally `data`, `ttl`, .... Long
        lists are split as in `send_bulk`; a dry run returns an empty list.
        """
        items = [dict(notification) for notification in notifications]
        return self._send_chunked(
            "/push/send/batch",
            "notifications",
            items,
            {"dry_run": True} if dry_run else {},
            idempotency_key=idempotency_key,
            batch_size=batch_size,
            dry_run=dry_run,
        )

    def unregister_device(self, device_id: str) -> None:
        """Remove a device registration of this app's users."""
        self._request(
            "DELETE", f"/push/devices/{quote(device_id, safe='')}", missing_ok_on_retry=True
        )

    def get_notification(self, notification_id: str) -> Notification:
        """Return a notification and the state of its delivery to each device."""
        answer = self._request("GET", f"/push/notifications/{quote(notification_id, safe='')}")
        if not isinstance(answer, dict) or "notification_id" not in answer:
            raise _unexpected("a notification object")
        return answer  # type: ignore[return-value]

    def _send_chunked(
        self,
        path: str,
        list_field: str,
        items: list[Any],
        common: dict[str, Any],
        *,
        idempotency_key: str | None,
        batch_size: int | None,
        dry_run: bool,
    ) -> list[str]:
        size = self._batch_size if batch_size is None else batch_size
        if size < 1:
            raise ValueError("batch_size must be at least 1")
        key = idempotency_key or _new_key()
        chunks = [items[start : start + size] for start in range(0, len(items), size)]
        ids: list[str] = []
        for index, chunk in enumerate(chunks):
            chunk_key = key if len(chunks) == 1 else _chunk_key(key, index)
            try:
                answer = self._request(
                    "POST", path, json={list_field: chunk, **common}, idempotency_key=chunk_key
                )
                ids.extend(_expect_ids(answer, 0 if dry_run else len(chunk)))
            except KeymasterError as exc:
                # Let the caller find the failing item in its own list, and resume: the
                # same call with this key replays the chunks already sent.
                offset_field_paths(exc, index * size)
                exc.sent_notification_ids = list(ids)
                exc.idempotency_key = key
                raise
        return ids

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        idempotency_key: str | None = None,
        missing_ok_on_retry: bool = False,
    ) -> Any:
        """Make one API call with auth, retries and error mapping; return the decoded body.

        `missing_ok_on_retry` makes a 404 after a retry a success: a DELETE whose first
        attempt timed out may have done its work.
        """
        url = self.base_url + path
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        retries = 0
        reauthenticated = False
        while True:
            try:
                token = self._credentials.token()
                response = self._send(
                    method, url, json=json, headers={**headers, "Authorization": f"Bearer {token}"}
                )
            except KeymasterError as exc:
                error = exc
            else:
                if response.status_code == 401 and not reauthenticated:
                    # A revoked token or rotated signing keys: one fresh token is worth a try.
                    reauthenticated = True
                    self._credentials.invalidate(token)
                    continue
                if response.ok:
                    return _decode(response)
                error = error_from_response(response)
            if missing_ok_on_retry and retries and isinstance(error, NotFound):
                return None
            self._sleep(self._wait_or_raise(error, retries, f"{method} {path}"))
            retries += 1

    def _wait_or_raise(self, error: KeymasterError, retries: int, call: str) -> float:
        """Return the wait before the next retry after `error`, or raise it as final."""
        wait = self._retry_wait(error, retries)
        if wait is None:
            if isinstance(error, ConnectionError) and retries:
                raise ConnectionError(
                    f"{error.message} (gave up after {retries + 1} attempts)"
                ) from error.__cause__
            raise error
        logger.warning(
            "Keymaster: %s failed (%s), retry %d of %d in %.1f s",
            call,
            error.code,
            retries + 1,
            self._max_retries,
            wait,
        )
        return wait

    def _retry_wait(self, error: KeymasterError, retries: int) -> float | None:
        """Return how long to wait before retrying after `error`, or None to give up."""
        if retries >= self._max_retries:
            return None
        if isinstance(error, (RateLimited, ServerError)) and error.retry_after is not None:
            # Waiting longer than the caller allows would only hide the error (a spent daily
            # quota asks for hours), so such an answer is final.
            return error.retry_after if error.retry_after <= self._max_retry_wait else None
        if isinstance(error, (ConnectionError, RateLimited, ServerError)):
            return backoff_delay(retries, cap=min(BACKOFF_CAP, self._max_retry_wait))
        return None

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Perform one HTTP request; transport failures become `ConnectionError`."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        headers.update(kwargs.pop("headers", None) or {})
        try:
            return self._session.request(
                method, url, headers=headers, timeout=self._timeout, **kwargs
            )
        except _TRANSIENT as exc:
            raise ConnectionError(f"{method} {url} failed: {exc}") from exc


def _new_key() -> str:
    return str(uuid.uuid4())


def _chunk_key(key: str, index: int) -> str:
    """Return the Idempotency-Key of chunk `index` of the send keyed `key`."""
    chunk_key = f"{key}:{index}"
    if len(chunk_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        # Still a function of the caller's key alone, so repeating the send replays it.
        chunk_key = f"{hashlib.sha256(key.encode()).hexdigest()}:{index}"
    return chunk_key


def _message_fields(*, dry_run: bool, **fields: Any) -> dict[str, Any]:
    """Build a request body from the given fields, leaving out those not set."""
    payload = {name: value for name, value in fields.items() if value is not None}
    if "data" in payload:
        payload["data"] = dict(payload["data"])
    if dry_run:
        payload["dry_run"] = True
    return payload


def _decode(response: requests.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        raise _unexpected("JSON") from exc


def _expect_str(answer: Any, field: str) -> str:
    value = answer.get(field) if isinstance(answer, dict) else None
    if not isinstance(value, str):
        raise _unexpected(f"an object with {field!r}")
    return value


def _expect_ids(answer: Any, count: int) -> list[str]:
    ids = answer.get("notification_ids") if isinstance(answer, dict) else None
    if not isinstance(ids, list) or len(ids) != count:
        raise _unexpected(f"{count} notification_ids")
    return [str(notification_id) for notification_id in ids]


def _unexpected(expected: str) -> KeymasterError:
    return KeymasterError(None, "unexpected_response", f"Keymaster answered without {expected}")
