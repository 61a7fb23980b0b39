"""Run an aiohttp application on a loopback port in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web


class FakeServer:
    """An aiohttp app served on 127.0.0.1 from its own thread and event loop.

    `start()` returns the base URL (``http://127.0.0.1:PORT``); `stop()` shuts it down.
    Subclasses (or callers) provide the app through `make_app`.
    """

    def __init__(self, make_app: Callable[[], web.Application], *, port: int = 0) -> None:
        self._make_app = make_app
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def start(self) -> str:
        """Start serving and return the base URL."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self.url

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self._make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def call(self, func: Callable[[], object]) -> object:
        """Run `func` on the server's loop (for state shared with handlers)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_as_coro(func), self._loop).result(10)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InFlight:
    """Requests being handled now, and the most at once: how concurrent a sender really is."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def reset(self) -> None:
        self.peak = self.now

    def __enter__(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        self.now -= 1


async def read_json(request: web.Request) -> dict[str, Any]:
    """Read a control endpoint's JSON object body ({} when there is none)."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON object") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return data


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    """Read an integer query parameter of a control endpoint (400 naming it when it is not)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None


async def _as_coro(func: Callable[[], object]) -> object:
    return func()
