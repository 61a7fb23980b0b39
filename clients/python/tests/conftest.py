"""Fixtures for the client tests: a stub Keymaster, a fake clock and a recording sleep.

`make_client` builds each flavour in turn: every test written against it runs once with
`KeymasterClient` and once with `AsyncKeymasterClient` (behind `flavours.AwaitEach`, which runs
each awaited call on the test's own event loop), so both clients are held to the same answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flavours import client_factory
from stub_server import FakeClock, StubServer

PACKAGE = Path(__file__).resolve().parents[1]
LIVE_HINT = (
    "test_live.py needs the Keymaster project: run it from the repository root with "
    "`pytest -c pyproject.toml clients/python/tests/test_live.py` (or the whole suite)"
)


def _standalone(config: pytest.Config) -> bool:
    """True when pytest took its settings from clients/python/pyproject.toml (no Django)."""
    return config.rootpath == PACKAGE


def pytest_configure(config: pytest.Config) -> None:
    named = [str(arg) for arg in config.invocation_params.args]
    if _standalone(config) and any("test_live" in arg for arg in named):
        raise pytest.UsageError(LIVE_HINT)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Under the package's own settings there is no Django: the live tests cannot run.
    if _standalone(config) and collection_path.name == "test_live.py":
        return True
    return None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _standalone(config):
        terminalreporter.write_line(f"keymaster_client alone, without test_live.py: {LIVE_HINT}")


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
