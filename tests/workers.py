"""Real `qcluster` worker processes against the test database (PostgreSQL only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def worker_env(overrides: dict[str, str]) -> dict[str, str]:
    """The environment of a worker that uses this test run's database."""
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DEBUG": "1", "Q_WORKERS": "1", **overrides}


def worker_start(env: dict[str, str], log_path: str, *command: str) -> subprocess.Popen:
    """Start a worker (`manage.py qcluster` unless told otherwise) in its own process group."""
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, *(command or ("manage.py", "qcluster"))],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds, or fail naming `what` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
