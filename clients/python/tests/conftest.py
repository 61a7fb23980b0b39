"""Fixtures for the client tests: a stub Keymaster, a fake clock and a recording sleep.

`make_client` builds each flavour in turn: every test written against it runs once with
`KeymasterClient` and once with `AsyncKeymasterClient` (behind `AwaitEach`, which runs each
awaited call on the test's own event loop), so both clients are held to the same answers.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stub_server import FakeClock, StubServer

from keymaster_client import AsyncKeymasterClient, KeymasterClient


class AwaitEach:
    """Call an AsyncKeymasterClient as if it were blocking: each coroutine runs to completion
    on `loop`, and an async iterator is drained into a list."""

    def __init__(self, client: AsyncKeymasterClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if inspect.isasyncgen(result):
                return self.loop.run_until_complete(_drain(result))
            return self.loop.run_until_complete(result)

        return call

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())


async def _drain(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer().start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the client asked for, in order (the client never really sleeps)."""
    return []


@pytest.fixture
def event_loop_for_client() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_factory(
    flavour: str,
    loop: asyncio.AbstractEventLoop,
    sleeps: list[float],
    defaults: Callable[[], dict[str, Any]],
) -> tuple[Callable[..., Any], list[Any]]:
    """Return a builder of clients of `flavour` (with `defaults`), and the list it fills."""
    clients: list[Any] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def make(**options: Any) -> Any:
        settings = {**defaults(), **options}
        if flavour == "sync":
            client: Any = KeymasterClient(sleep=sleeps.append, **settings)
        else:
            client = AwaitEach(AsyncKeymasterClient(sleep=record_sleep, **settings), loop)
        clients.append(client)
        return client

    return make, clients


@pytest.fixture
def make_client(
    stub: StubServer,
    clock: FakeClock,
    sleeps: list[float],
    flavour: str,
    event_loop_for_client: asyncio.AbstractEventLoop,
) -> Iterator[Callable[..., Any]]:
    def defaults() -> dict[str, Any]:  # read when a client is made: tests change the stub
        return {
            "base_url": stub.url,
            "client_id": stub.client_id,
            "client_secret": stub.client_secret,
            "clock": clock,
            "timeout": 5,
        }

    make, clients = client_factory(flavour, event_loop_for_client, sleeps, defaults)
    yield make
    for client in clients:
        client.close()
