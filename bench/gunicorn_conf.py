"""gunicorn settings for the benchmark: count SQL statements in each worker (bench.sqlcount)."""

from __future__ import annotations

from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    from bench import sqlcount

    sqlcount.install()
