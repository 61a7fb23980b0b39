"""Count the SQL statements a benchmarked process runs, without pg_stat_statements.

`install()` adds a Django execute wrapper to every new connection when `BENCH_SQL_COUNT_DIR`
is set; a daemon thread per process writes the running count to `<dir>/<pid>` every quarter
second. Forked django-q2 workers never run atexit handlers, so the count is written as it
goes rather than at exit; the harness waits a little longer than that before reading.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

ENV = "BENCH_SQL_COUNT_DIR"
INTERVAL = 0.25  # seconds between two writes of a process's count
_state = {"pid": 0, "count": 0}
_lock = threading.Lock()


def _writer(directory: Path, pid: int) -> None:
    path = directory / str(pid)
    while True:
        path.write_text(str(_state["count"]))
        time.sleep(INTERVAL)


def _count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    pid = os.getpid()
    if _state["pid"] != pid:  # first statement in this (possibly forked) process
        with _lock:
            if _state["pid"] != pid:
                _state.update(pid=pid, count=0)
                directory = Path(os.environ[ENV])
                threading.Thread(target=_writer, args=(directory, pid), daemon=True).start()
    _state["count"] += 1
    return execute(sql, params, many, context)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def install() -> None:
    """Count statements on every connection opened from now on (if BENCH_SQL_COUNT_DIR is set)."""
    if not os.environ.get(ENV):
        return
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, dispatch_uid="bench-sql-count")


def total(directory: Path) -> int:
    """Sum the counts every process wrote to `directory`."""
    return sum(int(p.read_text() or 0) for p in directory.iterdir() if p.name.isdigit())
