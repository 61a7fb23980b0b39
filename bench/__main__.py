"""`python -m bench run | soak | smoke`: the benchmark behind `make bench` and `make bench-soak`.

Everything runs on this machine against PostgreSQL at DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/km_bench), which is dropped and created afresh.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/km_bench"
ROOT = Path(__file__).resolve().parent.parent


def _setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "keymaster.settings")
    # The harness process only seeds and reads; its dev-mode keys are handed to gunicorn and
    # qcluster, which run with DEBUG off (bench.harness.settings_env).
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen mode."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("mode", choices=["run", "soak", "smoke"])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--web-workers", type=int)
    parser.add_argument("--q-workers", type=int)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every message count")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--rate", type=float, help="soak rate (default: 50%% of the maximum)")
    parser.add_argument(
        "--stacks", type=int, default=1, help="also run the mixed run on N stacks, one database"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the workers in the mixed max-rate run"
    )
    parser.add_argument(
        "--web-server",
        choices=["asgi", "sync"],
        default="asgi",
        help="gunicorn's asyncio worker (production) or the sync worker of before issue 22",
    )
    parser.add_argument(
        "--web-db-pool",
        type=int,
        default=4,
        help="DB_POOL_MAX_SIZE per web process (0: a connection per thread, per request on ASGI)",
    )
    parser.add_argument("--out", type=Path, help="results directory (default bench/results)")
    parser.add_argument(
        "--name", help="results file stem (default: the date, -2, -3... if taken that day)"
    )
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("the benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    _setup(args.database_url)

    from bench import harness
    from bench.stack import autovacuum_on

    scale = harness.SMOKE if args.mode == "smoke" else harness.Scale()
    counts = ("accept_users", "bulk_requests", "provider_users", "mixed_users", "fault_users")
    counts += ("broadcast_users", "scheduled_sends")  # bench.audiences
    changes = {name: max(1, int(getattr(scale, name) * args.scale)) for name in counts}
    changes |= {"peer_users": max(1, int(scale.peer_users * args.scale))}
    changes |= {"floor_users": max(1, int(scale.floor_users * args.scale))}
    if args.web_workers:
        changes["web_workers"] = args.web_workers
    if args.q_workers:
        changes["q_workers"] = args.q_workers
    if args.mode == "soak":
        changes["keep_received"] = 1000
    changes |= {"stacks": args.stacks, "profile": args.profile, "web_server": args.web_server}
    changes["web_db_pool"] = args.web_db_pool
    scale = dataclasses.replace(scale, **changes)
    workdir = ROOT / "artifacts" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {text}", flush=True)

    harness.prepare_database(args.database_url)
    progress("database ready")
    if args.mode == "smoke":
        return _run(args, scale, workdir, progress, started, "not checked (smoke)")
    with autovacuum_on(args.database_url) as autovacuum:
        progress(f"autovacuum: {autovacuum}")
        if args.mode == "soak":
            return _soak(args, scale, workdir, progress, autovacuum)
        return _run(args, scale, workdir, progress, started, autovacuum)


def _soak(args: Any, scale: Any, workdir: Path, progress: Any, autovacuum: str) -> int:
    from bench import harness

    results = harness.soak(
        scale,
        database_url=args.database_url,
        workdir=workdir,
        minutes=args.minutes,
        rate=args.rate,
        progress=progress,
    )
    results["meta"]["autovacuum"] = autovacuum
    stem = args.name or f"{time.strftime('%Y-%m-%d')}-soak"
    path = harness.write(results, args.out or harness.RESULTS, stem)
    soak = results["soak"]
    print(f"soak: {soak['rate']} notifications/s for {soak['seconds']:.0f} s; ok={soak['ok']}")
    for key, growth in soak["rss_growth"].items():
        before, after = growth["after_warmup_mb"], growth["end_mb"]
        print(f"  {key}: {before} → {after} MB ({growth['growth_pct']:+.2f}%)")
    generations = soak.get("worker_generations") or {}
    if generations.get("count", 0) >= 2:
        print(
            f"  workers recycled: {generations['count']} processes, each lived "
            f"{generations['median_lifetime_s']} s (median); peak RSS of the first ones "
            f"{generations['first_peak_mb']} MB, of the last ones {generations['last_peak_mb']} MB "
            f"({generations['growth_pct']:+.2f}%)"
        )
    print(f"written {path}")
    return 0 if soak["ok"] else 1


def _run(
    args: Any, scale: Any, workdir: Path, progress: Any, started: float, autovacuum: str
) -> int:
    from bench import harness, report

    results = harness.run(scale, database_url=args.database_url, workdir=workdir, progress=progress)
    results["meta"]["wall_seconds"] = round(time.monotonic() - started, 1)
    results["meta"]["autovacuum"] = autovacuum
    directory = args.out or (harness.RESULTS if args.mode == "run" else workdir)
    path = harness.write(results, directory, args.name)
    print()
    print(report.table(results))
    verdict = "passed" if results["ok"] else "FAILED"
    print(f"\nwritten {path} (logs in {workdir}); all checks {verdict}")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
