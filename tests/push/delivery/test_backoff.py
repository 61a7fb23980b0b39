"""Backoff between attempts: jittered, doubling, capped, never before the peer's Retry-After."""

from __future__ import annotations

import pytest

from push.delivery.backoff import backoff_seconds


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 5.0), (1, 5.0), (2, 10.0), (3, 20.0), (5, 80.0), (20, 600.0)]
)
def test_wait_is_jittered_between_half_and_the_whole_doubling_ceiling(attempt, ceiling):
    waits = [backoff_seconds(attempt, None, base=5.0, cap=600.0) for _ in range(200)]

    assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
    assert len(set(waits)) > 1  # jittered, not fixed


@pytest.mark.parametrize("retry_after", [0.0, 3.0, 900.0, 7200.0])
def test_never_sooner_than_the_peers_retry_after(retry_after):
    wait = backoff_seconds(3, retry_after, base=5.0, cap=600.0)

    assert wait >= retry_after
    assert wait == retry_after or wait <= 20.0


def test_the_cap_bounds_the_wait_without_a_retry_after():
    assert max(backoff_seconds(50, None, base=10.0, cap=60.0) for _ in range(100)) <= 60.0
