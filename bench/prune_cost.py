"""`python -m bench.prune_cost URL`: what deleting ended rows costs PostgreSQL, per row.

Run on a benchmark database after a run (it deletes every ended delivery there, with its
receipts, their attempts and the notifications left without deliveries), in batches of
`--batch` ids as a retention prune would: the backend's CPU (psutil on its process) and the
WAL it wrote, per table and per delivery. Weighed against what partitioning by time would
cost every statement, this is the figure that says whether partitioning pays (bench/README.md,
sixth pass). WAL is this database's own records (pg_walinspect), the server's beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import psutil
import psycopg

from bench.stack import pg_wal_of_database

# Children before parents, as the foreign keys require; each selects the ids of one batch.
STEPS = [
    (
        "push_receiptattempt",
        "SELECT a.id FROM push_receiptattempt a JOIN push_receipt r ON r.id = a.receipt_id"
        " WHERE r.status NOT IN ('pending', 'sending') LIMIT %s",
    ),
    (
        "push_receipt",
        "SELECT id FROM push_receipt WHERE status NOT IN ('pending', 'sending')"
        " AND NOT EXISTS (SELECT 1 FROM push_receiptattempt a WHERE a.receipt_id = push_receipt.id)"
        " LIMIT %s",
    ),
    (
        "push_delivery",
        "SELECT id FROM push_delivery d WHERE status NOT IN ('queued', 'sending')"
        " AND NOT EXISTS (SELECT 1 FROM push_receipt r WHERE r.delivery_id = d.id) LIMIT %s",
    ),
    (
        "push_notification",
        "SELECT id FROM push_notification n"
        " WHERE NOT EXISTS (SELECT 1 FROM push_delivery d WHERE d.notification_id = n.id)"
        " LIMIT %s",
    ),
]


def _state(conn: psycopg.Connection, backend: psutil.Process) -> tuple[float, int]:
    times = backend.cpu_times()
    lsn = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
    return times.user + times.system, int(lsn[0])


def measure(url: str, batch: int = 5000) -> dict[str, Any]:
    """Delete the ended rows batch by batch; CPU seconds, WAL bytes and rows per table."""
    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        backend = psutil.Process(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        for table, select in STEPS:
            rows = 0
            cpu0, wal0 = _state(conn, backend)
            started = time.monotonic()
            while True:
                with conn.transaction():
                    ids = [r[0] for r in conn.execute(select, [batch]).fetchall()]
                    if not ids:
                        break
                    conn.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [ids])  # noqa: S608
                rows += len(ids)
            cpu1, wal1 = _state(conn, backend)
            mine = pg_wal_of_database(url, wal0, wal1) if rows else None
            out[table] = {
                "rows": rows,
                "seconds": round(time.monotonic() - started, 2),
                "cpu_ms_per_row": round((cpu1 - cpu0) * 1000 / rows, 4) if rows else None,
                "wal_bytes_per_row": round(mine["bytes"] / rows, 1) if mine else None,
                "server_wal_bytes_per_row": round((wal1 - wal0) / rows, 1) if rows else None,
            }
    deliveries = out["push_delivery"]["rows"]
    if deliveries:
        out["per_delivery"] = {
            "cpu_ms": round(
                sum((t["cpu_ms_per_row"] or 0) * t["rows"] for t in out.values()) / deliveries, 4
            ),
            "wal_bytes": round(
                sum((t["wal_bytes_per_row"] or 0) * t["rows"] for t in out.values()) / deliveries,
                1,
            ),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prune_cost", description=__doc__)
    parser.add_argument("database_url")
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(measure(args.database_url, args.batch), indent=2))


if __name__ == "__main__":
    main()
