"""The per-process event loop and provider clients that delivery tasks share.

django-q2 runs tasks in forked worker processes. Each process lazily starts one asyncio loop in
a daemon thread and keeps its pooled clients (FCM, Web Push, webhooks) on it, so connections
and cached OAuth tokens / VAPID JWTs survive from one task to the next instead of being rebuilt
per chunk.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from functools import cached_property
from typing import Any, TypeVar

from django.conf import settings

from push.outbound import OutboundPolicy
from push.transports.fcm import FcmTransport
from push.transports.webhook import WebhookTransport
from push.transports.webpush import WebPushTransport

T = TypeVar("T")


class Runtime:
    """One loop thread and one set of transports for this process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="push-io", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the shared loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Close the transports that were started and stop the loop."""
        for name in ("fcm", "webpush", "webhook"):
            transport = self.__dict__.get(name)
            if transport is not None:
                self.run(transport.aclose(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @cached_property
    def fcm(self) -> FcmTransport:
        return FcmTransport(api_url=settings.FCM_API_URL, timeout=settings.PUSH_SEND_TIMEOUT)

    @cached_property
    def webpush(self) -> WebPushTransport:
        return WebPushTransport(
            policy=OutboundPolicy.from_settings(), timeout=settings.PUSH_SEND_TIMEOUT
        )

    @cached_property
    def webhook(self) -> WebhookTransport:
        return WebhookTransport(policy=OutboundPolicy.from_settings(), timeout=10.0)


_runtime: Runtime | None = None
_runtime_pid = 0
_lock = threading.Lock()


def runtime() -> Runtime:
    """Return this process's runtime, starting it on first use (and again after a fork)."""
    global _runtime, _runtime_pid
    with _lock:
        if _runtime is None or _runtime_pid != os.getpid():
            _runtime, _runtime_pid = Runtime(), os.getpid()
        return _runtime


def runtime_reset() -> None:
    """Close this process's runtime (tests change settings the transports were built from)."""
    global _runtime
    with _lock:
        if _runtime is not None and _runtime_pid == os.getpid():
            _runtime.close()
        _runtime = None
