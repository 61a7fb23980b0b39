"""The Procfile's `web` server, run as a real process against this test run's database."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.workers import ROOT, wait_until


def procfile_web_command() -> list[str]:
    """The Procfile's `web` command, through a shell as Procfile runners do, with our gunicorn."""
    line = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:")
    )
    return ["/bin/sh", "-c", "exec " + line.removeprefix("web:").strip()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serving(command: list[str], env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Run the web server `command` (its own process group); yield its URL once it answers."""
    with open(tmp_path / "web.log", "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        wait_until(lambda: answers(f"{url}/healthz"), 60, "the Procfile's web server")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
