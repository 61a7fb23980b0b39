"""Fixtures for the client tests: a stub Keymaster, a fake clock and a recording sleep."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stub_server import FakeClock, StubServer

from keymaster_client import KeymasterClient


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
def make_client(
    stub: StubServer, clock: FakeClock, sleeps: list[float]
) -> Iterator[Callable[..., KeymasterClient]]:
    clients: list[KeymasterClient] = []

    def make(**options: Any) -> KeymasterClient:
        settings: dict[str, Any] = {
            "base_url": stub.url,
            "client_id": stub.client_id,
            "client_secret": stub.client_secret,
            "sleep": sleeps.append,
            "clock": clock,
            "timeout": 5,
        }
        settings.update(options)
        client = KeymasterClient(**settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
