"""Load generation against the web stack: open-loop at a fixed rate, or closed-loop.

Open loop: request i is due at t0 + i/rate whatever happened to earlier ones, so a slow server
shows up as latency (measured from when the request was due: no coordinated omission) instead
of quietly lowering the offered load.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Shot:
    """One request: when it was due, how long from due and from sent to answered, the status."""

    due: float  # seconds after the start
    latency: float  # answered - due
    service: float  # answered - actually sent
    status: int
    body: dict[str, Any] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summarize(shots: list[Shot], elapsed: float, per_request: int) -> dict[str, Any]:
    """Accepted req/s, notifications/s and latency percentiles (ms) of one load step."""
    ok = [s for s in shots if s.status in (200, 202)]
    ms = [s.latency * 1000 for s in ok]
    service = [s.service * 1000 for s in ok]
    return {
        "requests": len(shots),
        "accepted": len(ok),
        "errors": {str(k): v for k, v in _count(s.status for s in shots if s not in ok).items()},
        "seconds": round(elapsed, 3),
        "accepted_per_second": round(len(ok) / elapsed, 1) if elapsed else 0.0,
        "notifications_per_second": round(len(ok) * per_request / elapsed, 1) if elapsed else 0,
        "p50_ms": _r(percentile(ms, 50)),
        "p90_ms": _r(percentile(ms, 90)),
        "p99_ms": _r(percentile(ms, 99)),
        "max_ms": _r(max(ms) if ms else None),
        "service_p50_ms": _r(percentile(service, 50)),
        "service_p99_ms": _r(percentile(service, 99)),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _count(items: Any) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, due: float, t0: float
) -> Shot:
    sent = time.monotonic()
    try:
        async with session.post(url, data=body) as answer:
            text = await answer.read()
            status = answer.status
    except (TimeoutError, aiohttp.ClientError):
        return Shot(due, time.monotonic() - (t0 + due), time.monotonic() - sent, 0)
    done = time.monotonic()
    try:
        parsed = json.loads(text) if status in (200, 202) else {}
    except ValueError:
        parsed = {}
    return Shot(due, done - (t0 + due), done - sent, status, parsed)


def _session(token: str, limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def _open_loop(
    url: str, token: str, bodies: Callable[[int], bytes], rate: float, count: int
) -> tuple[list[Shot], float]:
    async with _session(token, limit=512) as session:
        t0 = time.monotonic() + 0.05

        async def one(i: int) -> Shot:
            due = i / rate
            await asyncio.sleep(max(0.0, t0 + due - time.monotonic()))
            return await _post(session, url, bodies(i), due, t0)

        tasks = [asyncio.ensure_future(one(i)) for i in range(count)]
        # A server far slower than the offered load would stretch a step without bound: what
        # is not answered by twice the step's length (+5 s) counts as unanswered (status 0).
        done, late = await asyncio.wait(tasks, timeout=2 * count / rate + 5)
        for task in late:
            task.cancel()
        elapsed = time.monotonic() - t0
        shots = [task.result() for task in done]
        shots += [Shot(0.0, elapsed, elapsed, 0) for _ in late]
        return shots, elapsed


async def _closed_loop(
    url: str, token: str, bodies: Callable[[int], bytes], concurrency: int, count: int
) -> tuple[list[Shot], float]:
    async with _session(token, limit=concurrency) as session:
        t0 = time.monotonic()
        shots: list[Shot] = []
        counter = iter(range(count))

        async def client() -> None:
            for i in counter:
                due = time.monotonic() - t0
                shots.append(await _post(session, url, bodies(i), due, t0))

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return shots, time.monotonic() - t0


def open_loop(
    url: str, token: str, bodies: Callable[[int], bytes], *, rate: float, seconds: float
) -> tuple[list[Shot], float]:
    """POST `rate` requests a second for `seconds`; return the shots and the elapsed time."""
    return asyncio.run(_open_loop(url, token, bodies, rate, max(1, int(rate * seconds))))


def closed_loop(
    url: str, token: str, bodies: Callable[[int], bytes], *, concurrency: int, count: int
) -> tuple[list[Shot], float]:
    """POST `count` requests from `concurrency` clients, each waiting for its answer."""
    return asyncio.run(_closed_loop(url, token, bodies, concurrency, count))
