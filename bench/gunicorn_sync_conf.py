"""gunicorn settings of the benchmark before issue 22 (33c1b55): gunicorn's defaults (sync
workers, keymaster.wsgi), counting SQL statements in each worker. Used by `--web-server sync`
only, to compare the accept phase with production's asyncio worker (bench/gunicorn_conf.py)."""

from __future__ import annotations

from typing import Any


def post_fork(server: Any, worker: Any) -> None:
    from bench import sqlcount

    sqlcount.install()
