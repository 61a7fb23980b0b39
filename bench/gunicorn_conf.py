"""gunicorn settings for the benchmark: production's (keymaster/gunicorn_conf.py, its worker
class and limits; the harness sets workers and bind on the command line), plus counting SQL
statements in each worker (bench.sqlcount)."""

from __future__ import annotations

from typing import Any

from keymaster.gunicorn_conf import *  # noqa: F403 - the production settings, as they are

accesslog = None  # a line per request is the load generator's cost, not the server's


def post_fork(server: Any, worker: Any) -> None:
    from bench import sqlcount

    sqlcount.install()
