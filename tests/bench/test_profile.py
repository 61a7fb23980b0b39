"""bench.profile: py-spy's raw stacks given to the worker step whose function is innermost."""

from __future__ import annotations

import pytest

from bench import profile

ROOT = "/work/wt/perf"
SITE = "/venv/lib/python3.11/site-packages"


def _line(frames: list[tuple[str, str]], count: int) -> str:
    stack = ";".join(f"{name} ({path}:1)" for name, path in frames)
    return f'process 1:"python -m bench.qcluster";{stack} {count}'


TASK = [("worker", f"{SITE}/django_q/worker.py"), ("deliveries_send", f"{ROOT}/push/tasks.py")]
SEND = [*TASK, ("deliveries_send", f"{ROOT}/push/delivery/deliveries.py")]


def test_each_sample_goes_to_the_innermost_step():
    raw = "\n".join(
        [
            _line([*SEND, ("deliveries_claim", f"{ROOT}/push/delivery/deliveries.py")], 3),
            # A receipt row created while recording is the receipt's, not the record's.
            _line(
                [
                    *SEND,
                    ("deliveries_record", f"{ROOT}/push/delivery/deliveries.py"),
                    ("receipts_create", f"{ROOT}/push/delivery/receipts.py"),
                ],
                2,
            ),
            _line([*SEND, ("deliveries_record", f"{ROOT}/push/delivery/deliveries.py")], 4),
            _line(
                [
                    ("_run", "/usr/lib/python3.11/asyncio/events.py"),
                    ("send", f"{ROOT}/push/transports/webpush.py"),
                    ("encode", f"{SITE}/pywebpush/__init__.py"),
                    ("encrypt", f"{SITE}/http_ece/__init__.py"),
                ],
                5,
            ),
            _line(
                [
                    ("_run", "/usr/lib/python3.11/asyncio/events.py"),
                    ("send", f"{ROOT}/push/transports/fcm.py"),
                    ("_request", f"{SITE}/aiohttp/client.py"),
                    ("guard", f"{ROOT}/push/outbound.py"),
                    ("_request", f"{SITE}/aiohttp/client.py"),
                ],
                6,
            ),
            _line([("_run", "/usr/lib/python3.11/asyncio/events.py")], 1),
            _line([("pusher", f"{SITE}/django_q/pusher.py")], 2),
            # Waits are not CPU: counted apart, whatever py-spy's idle detection said.
            _line([*SEND, ("wait", f"{SITE}/psycopg/connection.py")], 7),
            _line([("_writer", f"{ROOT}/bench/sqlcount.py")], 9),
        ]
    )
    found = profile.shares(raw)
    assert found["samples"] == 23
    assert found["not_cpu"] == {"harness_counter": 9, "waiting_postgres": 7}
    assert found["per_step"] == {
        "http": 6,
        "encrypt": 5,
        "record": 4,
        "claim": 3,
        "receipt": 2,
        "task_overhead": 2,
        "event_loop": 1,
    }
    assert profile.per_message(found, 2.3)["http"] == pytest.approx(6 / 23 * 2.3, abs=1e-3)
    assert found["top_own"][0] == ("_request (/aiohttp/client.py)", round(6 / 23, 4))
    # A receipt's POST through the SSRF guard is the receipt's, not the provider's HTTP.
    webhook = [
        ("send", f"{ROOT}/push/transports/webhook.py"),
        ("guard", f"{ROOT}/push/outbound.py"),
    ]
    assert profile.step_of(webhook) == "receipt"
