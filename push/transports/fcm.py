"""Deliver a message to one device through the FCM HTTP v1 API.

https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send

firebase-admin supplies the credential and the message format (its encoder enforces FCM's
field rules); the HTTP is ours: a pooled aiohttp client, because firebase-admin's own
async path builds a request per message and its error classes lose the Retry-After header.
aiohttp, not httpx: on the benchmark httpx's async pool cost ~8-12 ms of CPU per message
(a connection-pool scan and an import attempt per request), aiohttp about a tenth of that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import requests
from firebase_admin import credentials, messaging
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2 import service_account

from keymaster.logs import ProviderFilter
from push.outbound import OutboundPolicy, answer_reason
from push.transports.base import (
    Outcome,
    OutcomeKind,
    PushMessage,
    gather_each,
    outcome_for_bug,
    parse_retry_after,
    redacted,
)
from push.transports.service_account import token_uri_check
from push.transports.webpush import TOPIC

logger = logging.getLogger(__name__)
logger.addFilter(ProviderFilter("fcm"))

RETRY = OutcomeKind.RETRY
FAILED = OutcomeKind.FAILED
INVALID_TOKEN = OutcomeKind.INVALID_TOKEN
TOKEN_INVALID_ARGUMENT = "INVALID_ARGUMENT:message.token"

# Every provider answer -> what it means for the device, keyed by the FCM error code
# (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode), else the Google API status
# (https://cloud.google.com/apis/design/errors), else the HTTP status class, else our own
# transport failure. `outcome_for_response` picks the key; nothing else decides a kind.
ERROR_TABLE: dict[str, OutcomeKind] = {
    # The token is gone for good: the app was uninstalled or the token expired.
    "UNREGISTERED": INVALID_TOKEN,
    # INVALID_ARGUMENT about the token itself (BadRequest names `message.token`) ...
    TOKEN_INVALID_ARGUMENT: INVALID_TOKEN,
    # ... but any other INVALID_ARGUMENT (too big, bad field) is our message, not the device.
    "INVALID_ARGUMENT": FAILED,
    "SENDER_ID_MISMATCH": FAILED,  # the token belongs to another Firebase project
    "THIRD_PARTY_AUTH_ERROR": FAILED,  # the APNs key / Web Push credential in Firebase is wrong
    "APNS_AUTH_ERROR": FAILED,  # the pre-2020 name of THIRD_PARTY_AUTH_ERROR
    "QUOTA_EXCEEDED": RETRY,
    "UNAVAILABLE": RETRY,
    "INTERNAL": RETRY,
    # Google API errors without an FcmError detail.
    "UNAUTHENTICATED": FAILED,
    "PERMISSION_DENIED": FAILED,
    "NOT_FOUND": FAILED,  # a 404 without UNREGISTERED is a wrong project, not a dead token
    "RESOURCE_EXHAUSTED": RETRY,
    "DEADLINE_EXCEEDED": RETRY,
    # Anything unrecognised, by HTTP status.
    "http_429": RETRY,
    "http_5xx": RETRY,
    "http_4xx": FAILED,
    # Our side of the wire.
    "timeout": RETRY,
    "connection_error": RETRY,
    "auth_unavailable": RETRY,  # the OAuth endpoint answered 5xx
    "auth_rejected": FAILED,  # the service account was refused: revoked key, wrong file
    "invalid_message": FAILED,  # firebase-admin refused to encode the message
    "fcm_not_configured": FAILED,  # the app has no service account (and there is no default)
}
# The answers (by error name) that mean the app's Firebase setup is wrong, not the device:
# the delivery wing shows them on the app's push config and keeps the device.
MISCONFIGURED = frozenset(
    {
        "SENDER_ID_MISMATCH",
        "THIRD_PARTY_AUTH_ERROR",
        "APNS_AUTH_ERROR",
        "fcm_not_configured",
        "auth_rejected",
        "http_401",
        "http_403",
    }
)

# FCM asks senders to wait at least a minute after a quota error when it sends no Retry-After
# (https://firebase.google.com/docs/cloud-messaging/scale-fcm#handling-retries).
MIN_RETRY_AFTER: dict[str, float] = {
    "QUOTA_EXCEEDED": 60.0,
    "RESOURCE_EXHAUSTED": 60.0,
    "http_429": 60.0,
}

_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_INVALID_TOKEN_MESSAGE = re.compile(r"registration token is not a valid", re.IGNORECASE)
_OAUTH_ERROR = re.compile(r"[^a-z_]")
_APNS_COLLAPSE_ID_MAX_BYTES = 64
_HEADERS = {"X-GOOG-API-FORMAT-VERSION": "2", "User-Agent": "keymaster-fcm/1"}
# After a failed token fetch, concurrent sends share its answer instead of each retrying it.
_AUTH_FAILURE_HOLD_SECONDS = 5.0


class _RedactTokenRequest(logging.Filter):
    """Keep the signed JWT-bearer assertion out of google-auth's DEBUG log of token requests.

    google-auth logs each request's body in the record's `httpRequest` extra (what a JSON log
    formatter writes) and hashes only its own list of sensitive fields, which leaves out the
    `assertion`: a JWT signed with the service account's key, good for an hour of FCM access
    (https://github.com/googleapis/google-auth-library-python/blob/main/google/auth/_helpers.py).
    """

    _JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "httpRequest", None)
        if isinstance(request, dict) and request.get("body"):
            body = self._JWT.sub("<redacted JWT>", str(request["body"]))
            record.httpRequest = {**request, "body": body}
        if getattr(record, "httpResponse", None) is not None:
            record.httpResponse = "<answer not logged>"  # an endpoint's answer is never logged
        return True


logging.getLogger("google.auth.transport.requests").addFilter(_RedactTokenRequest())


class _AuthRequest(GoogleAuthRequest):
    """A google-auth HTTP request with our timeout, never following a redirect.

    requests follows redirects by default: a token endpoint answering 307 to an internal
    address would make the worker POST there too.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(requests.Session())
        self._timeout = timeout

    def __call__(self, url: str, method: str = "GET", *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        kwargs["allow_redirects"] = False
        return super().__call__(url, method, *args, **kwargs)


class FcmCredential:
    """One service account's OAuth 2.0 access token, fetched once and refreshed near expiry."""

    def __init__(
        self, google_credential: service_account.Credentials, *, token_timeout: float = 10.0
    ) -> None:
        self._google = google_credential
        self.project_id: str = google_credential.project_id
        self.client_email: str = google_credential.service_account_email
        self._request = _AuthRequest(token_timeout)
        self._refresh_lock = threading.Lock()
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._failure: tuple[float, Exception] | None = None

    @classmethod
    def from_service_account(cls, info: dict[str, Any]) -> FcmCredential:
        """Build from a service-account JSON dict; raise ValueError if it is not one."""
        google_credential = credentials.Certificate(info).get_credential()
        if not google_credential.project_id:
            raise ValueError("Service account has no project_id.")
        return cls(google_credential)

    async def access_token(self) -> str:
        """Return a valid access token, fetching one off the event loop only when needed."""
        if self._google.valid:
            return self._google.token
        loop = asyncio.get_running_loop()
        lock = self._loop_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if not self._google.valid:
                await asyncio.to_thread(self._refresh)
        return self._google.token

    def invalidate(self) -> None:
        """Drop the cached access token so the next send fetches a new one."""
        with self._refresh_lock:
            self._google.token = None

    def _refresh(self) -> None:
        # A thread lock as well: the same credential may serve several event loops.
        with self._refresh_lock:
            if self._google.valid:
                return
            if self._failure and time.monotonic() - self._failure[0] < _AUTH_FAILURE_HOLD_SECONDS:
                raise self._failure[1]
            try:
                # refresh() rather than before_request(): the latter also starts google-auth's
                # regional-access-boundary lookup, an extra Google call FCM does not need.
                self._google.refresh(self._request)
            except auth_exceptions.GoogleAuthError as exc:
                self._failure = (time.monotonic(), exc)
                raise
            self._failure = None
            logger.info("FCM: fetched an access token for %s", self.client_email)


_credentials: dict[str, tuple[str, FcmCredential]] = {}
_credentials_lock = threading.Lock()


def credential_for(key: str, info: dict[str, Any]) -> FcmCredential:
    """Return the process-wide credential cached under `key`, rebuilt if `info`'s key changed.

    Raise ServiceAccountRefused when its token_uri may not be requested (checked at each use).
    """
    token_uri_check(info.get("token_uri"), OutboundPolicy.from_settings())
    fingerprint = f"{info.get('client_email')}/{info.get('private_key_id')}"
    with _credentials_lock:
        cached = _credentials.get(key)
        if cached is None or cached[0] != fingerprint:
            cached = (fingerprint, FcmCredential.from_service_account(info))
            _credentials[key] = cached
        return cached[1]


# https://firebase.google.com/docs/cloud-messaging/concept-options#notifications_and_data_messages:
# "the maximum payload for both message types is 4096 bytes", counted as the data keys and
# values and the notification's title and body.
MAX_PAYLOAD = 4096


def fcm_data(message: PushMessage) -> dict[str, str]:
    """Return `data` as FCM takes it: strings (JSON for other values), with notification_id.

    The notification_id lets an app report an open (POST /push/opened); it replaces a key of
    the same name in the sender's data.
    """
    data = {
        key: value if isinstance(value, str) else _json(value)
        for key, value in message.data.items()
    }
    data["notification_id"] = message.notification_id
    return data


def payload_size(message: PushMessage) -> int:
    """Return the bytes FCM counts against MAX_PAYLOAD for `message`."""
    size = sum(len(key.encode()) + len(value.encode()) for key, value in fcm_data(message).items())
    return size + len(message.title.encode()) + len(message.body.encode())


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def build_message(token: str, message: PushMessage) -> dict[str, Any]:
    """Return the FCM v1 request body sending `message` to `token`."""
    high = message.priority == "high"
    collapse_key = message.collapse_key
    apns_headers = {
        # APNs reads 0 as "deliver now or never", like FCM's ttl of 0s.
        "apns-expiration": str(int(time.time()) + message.ttl) if message.ttl > 0 else "0",
        "apns-priority": "10" if high else "5",
    }
    if collapse_key and len(collapse_key.encode()) <= _APNS_COLLAPSE_ID_MAX_BYTES:
        apns_headers["apns-collapse-id"] = collapse_key
    webpush_headers = {
        "TTL": str(message.ttl),
        "Urgency": message.urgency or ("high" if high else "normal"),
    }
    if collapse_key and TOPIC.fullmatch(collapse_key):
        webpush_headers["Topic"] = collapse_key
    fcm_message = messaging.Message(
        notification=messaging.Notification(title=message.title, body=message.body),
        data=fcm_data(message),
        android=messaging.AndroidConfig(
            ttl=message.ttl, priority=message.priority, collapse_key=collapse_key
        ),
        apns=messaging.APNSConfig(headers=apns_headers),
        webpush=messaging.WebpushConfig(headers=webpush_headers),
    )
    # The v1 API still addresses registration tokens as `token`; firebase-admin 7 deprecates
    # the constructor argument (in favour of `fid`), so set it directly to skip that warning.
    fcm_message.token = token
    return {"message": messaging._MessagingService.encode_message(fcm_message)}


def outcome_for_response(
    status: int, headers: Mapping[str, str], content: bytes, *, token: str = ""
) -> Outcome:
    """Turn one FCM HTTP answer into an Outcome through ERROR_TABLE."""
    if 200 <= status < 300:
        return Outcome.delivered()
    error = _google_error(content)
    code = _fcm_error_code(error) or error.get("status")
    code = code if isinstance(code, str) else None
    key = code if code in ERROR_TABLE else _status_key(status)
    if code == "INVALID_ARGUMENT" and _names_token(error):
        key = TOKEN_INVALID_ARGUMENT
    error_name = code or f"http_{status}"
    kind = ERROR_TABLE[key]
    message = redacted(str(error.get("message") or "no error body"), token)
    detail = f"FCM {status}: {answer_reason(message)}"
    retry_after = None
    if kind is RETRY:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        floor = MIN_RETRY_AFTER.get(key)
        if floor is not None:
            retry_after = max(retry_after or 0.0, floor)
    return Outcome(kind, error_name, detail, retry_after, misconfigured=error_name in MISCONFIGURED)


def _google_error(content: bytes) -> dict[str, Any]:
    """Return the `error` object of a Google API error body, or {} for anything else."""
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _fcm_error_code(error: dict[str, Any]) -> str | None:
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE:
            return detail.get("errorCode")
    return None


def _names_token(error: dict[str, Any]) -> bool:
    """Tell whether an INVALID_ARGUMENT blames the registration token rather than the message."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == _BAD_REQUEST_TYPE:
            fields = [v.get("field") for v in detail.get("fieldViolations") or []]
            if "message.token" in fields:
                return True
    return bool(_INVALID_TOKEN_MESSAGE.search(str(error.get("message", ""))))


def _status_key(status: int) -> str:
    if status == 429:
        return "http_429"
    return "http_5xx" if status >= 500 else "http_4xx"


def _auth_outcome(exc: Exception, credential: FcmCredential) -> Outcome:
    """Turn a failed token fetch into an Outcome; only the OAuth error's code and words show."""
    reason = _oauth_reason(exc)
    if isinstance(exc, auth_exceptions.TransportError):
        key, detail = "connection_error", f"OAuth token endpoint unreachable: {reason}"
    elif isinstance(exc, auth_exceptions.RefreshError) and exc.retryable:
        key, detail = "auth_unavailable", f"OAuth token endpoint failed: {reason}"
    else:
        key = "auth_rejected"
        detail = f"OAuth token refused for service account {credential.client_email}: {reason}"
    return Outcome(ERROR_TABLE[key], key, detail[:200], misconfigured=key in MISCONFIGURED)


def outcome_not_configured() -> Outcome:
    """The outcome of a send for an app with no FCM service account."""
    error = "fcm_not_configured"
    return Outcome(
        ERROR_TABLE[error], error, "no FCM service account is configured", misconfigured=True
    )


def _oauth_reason(exc: Exception) -> str:
    # google-auth puts the endpoint's whole answer in the exception: keep only the RFC 6749
    # error code of a JSON answer (invalid_grant, invalid_client ...), nothing of any other.
    answer = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return f"the token endpoint answered {_OAUTH_ERROR.sub('', answer['error'])[:40]}"
    if isinstance(exc, auth_exceptions.RefreshError):
        return "unexpected answer from the token endpoint"
    return answer_reason(exc.args[0] if exc.args else type(exc).__name__)


class FcmTransport:
    """Send to FCM over one pooled HTTP client; keep one per worker process."""

    def __init__(
        self,
        *,
        api_url: str = "https://fcm.googleapis.com",
        timeout: float = 10.0,
        max_in_flight: int = 100,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._max_in_flight = max_in_flight
        self._client: aiohttp.ClientSession | None = None
        self._in_flight: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _pool(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        """Return the client and in-flight limit for the running loop, creating them lazily."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._in_flight is None or self._loop is not loop:
            # A client is bound to the loop it was made on; a new loop needs a new one (the old
            # client's connections died with its loop).
            # HTTP/1.1 keep-alive: one pooled connection per request in flight, reused.
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_in_flight),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers=_HEADERS,
            )
            self._in_flight = asyncio.Semaphore(self._max_in_flight)
            self._loop = loop
        return self._client, self._in_flight

    async def send(self, credential: FcmCredential, token: str, message: PushMessage) -> Outcome:
        """Send `message` to the device holding `token` and say what FCM made of it."""
        try:
            body = build_message(token, message)
        except ValueError as exc:
            outcome = Outcome(ERROR_TABLE["invalid_message"], "invalid_message", str(exc)[:200])
            return self._logged(outcome, token, message)
        try:
            access_token = await credential.access_token()
        except auth_exceptions.GoogleAuthError as exc:
            return self._logged(_auth_outcome(exc, credential), token, message)
        outcome = await self._post(credential, access_token, body, token)
        if outcome.error in ("UNAUTHENTICATED", "http_401"):
            credential.invalidate()  # Google revoked the token early; fetch a new one next time
        return self._logged(outcome, token, message)

    async def _post(
        self, credential: FcmCredential, access_token: str, body: dict[str, Any], token: str
    ) -> Outcome:
        client, in_flight = self._pool()
        url = f"{self._api_url}/v1/projects/{credential.project_id}/messages:send"
        headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
        async with in_flight:
            try:
                async with client.post(
                    url, data=json.dumps(body), headers=headers, allow_redirects=False
                ) as response:
                    status, answer_headers = response.status, response.headers
                    content = await response.read()
            except TimeoutError as exc:
                detail = f"no answer within {self._timeout:g}s ({type(exc).__name__})"
                return Outcome(ERROR_TABLE["timeout"], "timeout", detail)
            except aiohttp.ClientError as exc:
                detail = redacted(f"{type(exc).__name__}: {exc}", token)
                return Outcome(ERROR_TABLE["connection_error"], "connection_error", detail)
        return outcome_for_response(status, answer_headers, content, token=token)

    async def send_many(
        self,
        credential: FcmCredential,
        items: list[tuple[str, PushMessage]],
        each: Callable[[int, Outcome], None] | None = None,
        admit: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[Outcome]:
        """Send each (token, message) concurrently; return the outcomes in the same order.

        `each(index, outcome)` is called as each outcome arrives, `admit(index)` awaited before
        each send (`gather_each`).
        """

        def instead(index: int, exc: Exception) -> Outcome:
            token, message = items[index]
            logger.error(
                "FCM: unexpected error for notification %s", message.notification_id, exc_info=exc
            )
            return outcome_for_bug(exc, redact=token)

        sends = (self.send(credential, token, message) for token, message in items)
        return await gather_each(sends, instead, each, admit)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.close()
        self._loop = None

    @staticmethod
    def _logged(outcome: Outcome, token: str, message: PushMessage) -> Outcome:
        level = {
            OutcomeKind.DELIVERED: logging.DEBUG,
            OutcomeKind.FAILED: logging.WARNING,
        }.get(outcome.kind, logging.INFO)
        logger.log(
            level,
            "FCM: %s for notification %s to token ...%s: %s %s",
            outcome.kind,
            message.notification_id,
            token[-6:],
            outcome.error or "",
            outcome.detail,
        )
        return outcome
