"""Client-credentials access tokens, fetched on demand and refreshed before they expire.

One refresh at a time: callers (threads, or tasks) that find the token stale while another
fetches it wait for that fetch instead of each asking for a token. The cache itself is
`_core.TokenCache`, shared by both kinds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from keymaster_client._core import TokenCache
from keymaster_client._response import RawResponse


class ClientCredentials:
    """The token of one app for `KeymasterClient`; safe to share between threads.

    `fetch` performs the token request once (the caller owns retries); `clock` is a
    monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        cache: TokenCache,
        *,
        fetch: Callable[[], RawResponse],
        clock: Callable[[], float],
    ) -> None:
        self._cache = cache
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()

    def token(self) -> str:
        """Return a valid access token, fetching one if the cached one is (nearly) stale."""
        with self._lock:
            now = self._clock()
            value = self._cache.valid(now)
            if value is None:
                value = self._cache.store(self._fetch(), now)
            return value

    def invalidate(self, value: str) -> None:
        with self._lock:
            self._cache.invalidate(value)


class AsyncClientCredentials:
    """The token of one app for `AsyncKeymasterClient`: one fetch at a time across tasks."""

    def __init__(
        self,
        cache: TokenCache,
        *,
        fetch: Callable[[], Awaitable[RawResponse]],
        clock: Callable[[], float],
    ) -> None:
        self._cache = cache
        self._fetch = fetch
        self._clock = clock
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        value = self._cache.valid(self._clock())
        if value is not None:  # the common case takes no lock
            return value
        async with self._lock:
            now = self._clock()
            value = self._cache.valid(now)
            if value is None:
                value = self._cache.store(await self._fetch(), now)
            return value

    def invalidate(self, value: str) -> None:
        # No await between check and change: atomic with respect to other tasks.
        self._cache.invalidate(value)
