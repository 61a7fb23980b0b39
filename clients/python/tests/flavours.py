"""Both clients behind one blocking interface, so one test body checks both."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

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
