"""Client-credentials access tokens: fetched on demand, cached, refreshed before they expire."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus

import requests

from keymaster_client.errors import AuthenticationError, KeymasterError, oauth_error_from_response

logger = logging.getLogger(__name__)

SCOPE = "push:send"
# Refresh this long before expiry (capped at a tenth of the lifetime, for short-lived tokens),
# so a token never expires between the check and the server reading it.
REFRESH_MARGIN = 30.0
# RFC 6749 makes expires_in optional; without it, assume a short life rather than forever.
DEFAULT_LIFETIME = 300.0


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float


class ClientCredentials:
    """Hold one app's access token; safe to share between threads.

    `send` performs one HTTP request (the caller owns retries), `clock` is a monotonic
    clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        send: Callable[..., requests.Response],
        clock: Callable[[], float],
    ) -> None:
        self._token_url = token_url
        # RFC 6749 section 2.3.1: form-encode both before Basic encoding, and Keymaster
        # decodes them so; a "+" in a secret sent raw would arrive as a space.
        self._auth = (quote_plus(client_id), quote_plus(client_secret))
        self._send = send
        self._clock = clock
        self._token: _Token | None = None
        # Held while fetching, so threads that find the token stale wait for one refresh
        # instead of each asking for a new token.
        self._lock = threading.Lock()

    def token(self) -> str:
        """Return a valid access token, fetching a new one if the cached one is (nearly) stale."""
        with self._lock:
            token = self._token
            if token is None or self._clock() >= token.refresh_at:
                token = self._fetch()
                self._token = token
            return token.value

    def invalidate(self, value: str) -> None:
        """Forget `value` (the server refused it), unless another thread already replaced it."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _fetch(self) -> _Token:
        requested_at = self._clock()
        response = self._send(
            "POST",
            self._token_url,
            auth=self._auth,
            data={"grant_type": "client_credentials", "scope": SCOPE},
        )
        if not response.ok:
            raise oauth_error_from_response(response)
        try:
            payload = response.json()
            value = payload["access_token"]
            token_type = payload.get("token_type", "")
            lifetime = float(payload.get("expires_in", DEFAULT_LIFETIME))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeymasterError(
                response.status_code,
                "unexpected_response",
                "the token endpoint answered without a usable access_token",
                response.text,
            ) from exc
        if not isinstance(value, str) or str(token_type).lower() != "bearer":
            raise AuthenticationError(
                response.status_code,
                "unsupported_token_type",
                f"expected a Bearer access token, got token_type={token_type!r}",
                payload,
            )
        margin = min(REFRESH_MARGIN, lifetime / 10)
        logger.debug("Keymaster: fetched an access token valid for %.0f s", lifetime)
        return _Token(value=value, refresh_at=requested_at + lifetime - margin)
