"""The sans-I/O core both clients share: one API call's retry, re-authentication and error logic,
and the token cache. The clients only move bytes (requests, httpx) and sleep (time, asyncio).

A client runs a call as:

    attempt = Attempt(call, policy)
    while True:
        try:
            token = <cached or fetched token>
            raw = <send call.method call.path with attempt.headers(token)>
            step = attempt.answered(raw, token)
        except KeymasterError as exc:
            step = attempt.failed(exc)          # raises when the error is final
        if isinstance(step, Done): return step.value
        if isinstance(step, Reauthenticate): <forget step.token>; continue
        <sleep step.wait>
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote_plus

from keymaster_client._response import RawResponse
from keymaster_client._version import __version__
from keymaster_client.errors import (
    AuthenticationError,
    KeymasterConnectionError,
    KeymasterError,
    NotFound,
    RateLimited,
    ServerError,
    error_from_response,
    oauth_error_from_response,
)
from keymaster_client.models import UnexpectedAnswer
from keymaster_client.retry import BACKOFF_CAP, backoff_delay

logger = logging.getLogger("keymaster_client")

T = TypeVar("T")

SCOPE = "push:send"
TOKEN_PATH = "/oauth/token"
# Refresh this long before expiry (capped at a tenth of the lifetime, for short-lived tokens),
# so a token never expires between the check and the server reading it.
REFRESH_MARGIN = 30.0
# RFC 6749 makes expires_in optional; without it, assume a short life rather than forever.
DEFAULT_LIFETIME = 300.0


def user_agent(library: str) -> str:
    return f"keymaster-client-python/{__version__} {library}"


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: what to send, and how to read the success answer into a result."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    # A 404 after a retry is a success: a DELETE whose first attempt timed out may have
    # done its work.
    missing_ok_on_retry: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to retry: full-jitter backoff, Retry-After honoured."""

    max_retries: int = 3
    max_retry_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")

    def wait(self, error: KeymasterError, retries: int) -> float | None:
        """Return how long to wait before retrying after `error`, or None to give up."""
        if retries >= self.max_retries:
            return None
        retry_after = getattr(error, "retry_after", None)
        if isinstance(error, (RateLimited, ServerError)) and retry_after is not None:
            # The server named its wait: take it, unless it is longer than the caller allows
            # (a spent quota asks for hours), in which case the answer is final.
            return float(retry_after) if retry_after <= self.max_retry_wait else None
        if isinstance(error, (KeymasterConnectionError, RateLimited, ServerError)):
            return backoff_delay(retries, cap=min(BACKOFF_CAP, self.max_retry_wait))
        return None


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


@dataclass(frozen=True)
class Retry:
    wait: float


@dataclass(frozen=True)
class Reauthenticate:
    token: str


Step = Done[T] | Retry | Reauthenticate


class Attempt(Generic[T]):
    """The state of one call across its attempts: retries made, whether a token was refreshed."""

    def __init__(self, call: Call[T], policy: RetryPolicy) -> None:
        self.call = call
        self._policy = policy
        self._retries = 0
        self._reauthenticated = False

    def headers(self, token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if self.call.idempotency_key:
            headers["Idempotency-Key"] = self.call.idempotency_key
        return headers

    def answered(self, raw: RawResponse, token: str) -> Step[T]:
        """Decide what an HTTP answer means: a result, a token refresh, a retry, or raise."""
        if raw.status == 401 and not self._reauthenticated:
            # A revoked token or rotated signing keys: one fresh token is worth a try.
            self._reauthenticated = True
            return Reauthenticate(token)
        if raw.ok:
            return Done(self.call.parse(decode(raw)))
        return self.failed(error_from_response(raw))

    def failed(self, error: KeymasterError) -> Step[T]:
        """Return the wait before the next attempt after `error`, or raise it as final."""
        if self.call.missing_ok_on_retry and self._retries and isinstance(error, NotFound):
            return Done(self.call.parse(None))
        wait = self._policy.wait(error, self._retries)
        if wait is None:
            if isinstance(error, KeymasterConnectionError) and self._retries:
                raise KeymasterConnectionError(
                    f"{error.message} (gave up after {self._retries + 1} attempts)"
                ) from error.__cause__
            raise error
        self._retries += 1
        logger.warning(
            "Keymaster: %s %s failed (%s), retry %d of %d in %.1f s",
            self.call.method,
            self.call.path,
            error.code,
            self._retries,
            self._policy.max_retries,
            wait,
        )
        return Retry(wait)


def decode(raw: RawResponse) -> Any:
    """Return the decoded JSON of a success answer (None when empty)."""
    if raw.status == 204 or not raw.content:
        return None
    try:
        return raw.json()
    except ValueError as exc:
        raise unexpected("JSON") from exc


def parsed(parse: Callable[[Any], T]) -> Callable[[Any], T]:
    """Wrap a result parser so a malformed answer raises KeymasterError, not ValueError."""

    def read(answer: Any) -> T:
        try:
            return parse(answer)
        except UnexpectedAnswer as exc:
            raise KeymasterError(
                None, "unexpected_response", f"Keymaster answered unexpectedly: {exc}", answer
            ) from exc

    return read


def unexpected(expected: str) -> KeymasterError:
    return KeymasterError(None, "unexpected_response", f"Keymaster answered without {expected}")


# --- Access tokens ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    value: str
    refresh_at: float


class TokenCache:
    """One app's cached access token; the clients guard it with their own kind of lock."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        # RFC 6749 section 2.3.1: form-encode both before Basic encoding, and Keymaster
        # decodes them so; a "+" in a secret sent raw would arrive as a space.
        self.basic_auth = (quote_plus(client_id), quote_plus(client_secret))
        self.form = {"grant_type": "client_credentials", "scope": SCOPE}
        self._token: Token | None = None

    def valid(self, now: float) -> str | None:
        """Return the cached token if it is not (nearly) stale."""
        token = self._token
        return token.value if token is not None and now < token.refresh_at else None

    def store(self, raw: RawResponse, requested_at: float) -> str:
        """Read a token answer, cache the token and return it (or raise the refusal)."""
        if not raw.ok:
            raise oauth_error_from_response(raw)
        try:
            payload = raw.json()
            value = payload["access_token"]
            token_type = payload.get("token_type", "")
            lifetime = float(payload.get("expires_in", DEFAULT_LIFETIME))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeymasterError(
                raw.status,
                "unexpected_response",
                "the token endpoint answered without a usable access_token",
                raw.text,
            ) from exc
        if not isinstance(value, str) or str(token_type).lower() != "bearer":
            raise AuthenticationError(
                raw.status,
                "unsupported_token_type",
                f"expected a Bearer access token, got token_type={token_type!r}",
                payload,
            )
        margin = min(REFRESH_MARGIN, lifetime / 10)
        logger.debug("Keymaster: fetched an access token valid for %.0f s", lifetime)
        self._token = Token(value=value, refresh_at=requested_at + lifetime - margin)
        return value

    def invalidate(self, value: str) -> None:
        """Forget `value` (the server refused it), unless it was already replaced."""
        if self._token is not None and self._token.value == value:
            self._token = None
