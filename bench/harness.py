"""The benchmark's phases in order, at a given scale: `run`, `soak` and the test suite's smoke.

The smoke (tests/bench/test_smoke.py) runs this same code at a tiny scale and asserts only
correctness; `make bench` runs it at full scale and writes bench/results/.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings

from bench import audiences, load, report
from bench.delivery import Context, collect, delivery_run, wait_done
from bench.phases import accept_phase, rival_run, rival_spec
from bench.seed import seed_app
from bench.stack import (
    Sampler,
    Stack,
    database_recreate,
    dump,
    git_commit,
    machine,
    versions,
    wal_background,
)

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Scale:
    """How much of everything one run does."""

    web_workers: int = 4
    q_workers: int = 2
    accept_users: int = 2000
    accept_rates: list[float] = field(default_factory=lambda: [50, 100, 200, 300, 400])
    accept_seconds: float = 8
    bulk_requests: int = 16
    batch_size: int = 500
    provider_users: int = 10_000
    mixed_users: int = 20_000
    half_seconds: float = 20
    half_burst: int = 10
    half_rate: float | None = None  # None: half of the measured maximum
    fault_users: int = 5000
    fault_rates: dict[str, Any] = field(
        default_factory=lambda: {
            "gone": 0.05,
            "throttle": 0.01,
            "retry_after": 1,
            "latency_ms": 20,
            "seed": 8,
        }
    )
    peer_users: int = 2000
    floor_users: int = 10_000
    keep_received: int | None = None
    timeout: float = 600
    stacks: int = 1  # > 1: the mixed run again on that many stacks on one database
    profile: bool = False  # py-spy on the workers during the mixed maximum-rate run
    web_server: str = "asgi"  # "sync": the sync gunicorn worker of before issue 22
    # DB_POOL_MAX_SIZE of each web process. Under ASGI, 0 opens a connection per request:
    # hundreds at once at 400 req/s, more than a shared server allows (bench/README.md).
    web_db_pool: int = 4
    # bench.audiences: a broadcast to this many users; scheduled sends over a window (s).
    broadcast_users: int = 100_000
    scheduled_sends: int = 1000
    scheduled_window: float = 60.0


SOAK_SAMPLE_SECONDS = 10.0  # the soak reads every web and worker process's RSS this often

SMOKE = Scale(
    web_workers=1,
    q_workers=1,
    accept_users=20,
    accept_rates=[10],
    accept_seconds=1,
    bulk_requests=2,
    batch_size=20,
    provider_users=20,
    mixed_users=30,
    half_seconds=2,
    half_burst=5,
    half_rate=10,
    fault_users=60,
    fault_rates={
        "gone": 0.1,
        "throttle": 0.1,
        "fcm_throttle": 0.0,
        "retry_after": 1,
        "latency_ms": 20,
        "seed": 8,
    },
    peer_users=10,
    floor_users=10,
    timeout=60,
    broadcast_users=50,
    scheduled_sends=20,
    scheduled_window=3.0,
)


def settings_env() -> dict[str, str]:
    """Settings for gunicorn and qcluster: production mode, this process's keys (to share data)."""
    return {
        "DEBUG": "0",
        "SECRET_KEY": settings.SECRET_KEY,
        "JWT_SIGNING_KEY": settings.SIMPLE_JWT["SIGNING_KEY"],
        "JWT_ISSUER": settings.JWT_ISSUER,
        "TOKEN_ENCRYPTION_KEYS": ",".join(settings.TOKEN_ENCRYPTION_KEYS),
        "TOKEN_LOOKUP_KEY": settings.TOKEN_LOOKUP_KEY,
        "PUSH_VAPID_SUBJECT": settings.PUSH_VAPID_SUBJECT,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "CONN_MAX_AGE": "600",
    }


def prepare_database(database_url: str) -> None:
    """Recreate and migrate the benchmark database (this process's DATABASES points at it)."""
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    database_recreate(database_url)
    call_command("migrate", interactive=False, verbosity=0)


def _meta(scale: Scale, database_url: str) -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {**versions(), "postgresql": server},
        "git_commit": git_commit(),
        "database": database_url.rsplit("/", 1)[-1],
        "scale": asdict(scale),
        "note": "everything on one machine: fakes, PostgreSQL, gunicorn, qcluster, the harness",
    }


def _start(scale: Scale, database_url: str, workdir: Path) -> tuple[Stack, Context]:
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        database_url=database_url,
        web_workers=scale.web_workers,
        q_workers=scale.q_workers,
        workdir=workdir,
        settings_env=settings_env(),
        keep_received=scale.keep_received,
        web_server=scale.web_server,
        web_db_pool=scale.web_db_pool,
    )
    try:
        stack.start_fakes()
        stack.start_web()
        stack.start_workers()
    except BaseException:
        stack.stop()
        raise
    return stack, Context(stack, Sampler(stack.groups()).start())


def run(scale: Scale, *, database_url: str, workdir: Path, progress: Any = print) -> dict[str, Any]:
    """Run every phase; return the results (nothing written)."""
    stack, ctx = _start(scale, database_url, workdir)
    progress(f"stack up: {stack.web_url}, {scale.web_workers} web, {scale.q_workers} workers")
    fakes = stack.fakes
    results: dict[str, Any] = {"meta": _meta(scale, database_url)}
    try:
        progress("accept: single, bulk and batch sends")
        accept_app = seed_app(fakes, "accept", scale.accept_users, webpush=False)
        results["accept"] = accept_phase(
            ctx,
            accept_app,
            rates=scale.accept_rates,
            seconds=scale.accept_seconds,
            bulk_requests=scale.bulk_requests,
            batch_size=min(scale.batch_size, scale.accept_users),
        )
        runs: dict[str, Any] = {}
        results["delivery"] = runs
        for key, users, fcm, webpush in (
            ("webpush_only", scale.provider_users, False, True),
            ("fcm_only", scale.provider_users, True, False),
            ("mixed_max", scale.mixed_users, True, True),
        ):
            progress(f"delivery: {key} ({users} users)")
            seeded = seed_app(fakes, key, users, fcm=fcm, webpush=webpush)
            background = wal_background(database_url) if key == "mixed_max" else None
            profiled = key == "mixed_max" and scale.profile
            profile = workdir / "mixed_max-pyspy.txt" if profiled else None
            runs[key] = delivery_run(
                ctx,
                seeded,
                tag=key,
                timeout=scale.timeout,
                profile=profile,
                wal_detail=key == "mixed_max",
            )
            if background is not None:
                runs[key]["cost"]["wal_background_bytes_per_second"] = background
        if scale.stacks > 1:
            progress(f"delivery: mixed on {scale.stacks} stacks ({scale.mixed_users} users)")
            runs["mixed_stacks"] = stacks_run(ctx, scale)
            results["stacks"] = stacks_summary(runs["mixed_max"], runs["mixed_stacks"])
        max_notifications = (runs["mixed_max"]["pipeline"]["per_second"] or 2) / 2
        rate = scale.half_rate or round(max_notifications / 2, 1)
        users = max(scale.half_burst, int(rate * scale.half_seconds))
        progress(f"delivery: mixed at 50% of the maximum ({rate} notifications/s)")
        seeded = seed_app(fakes, "mixed_half", users)
        runs["mixed_half"] = delivery_run(
            ctx, seeded, tag="mixed_half", rate=rate, burst=scale.half_burst, timeout=scale.timeout
        )
        progress(f"faults: {scale.fault_rates} ({scale.fault_users} users)")
        seeded = seed_app(fakes, "faults", scale.fault_users)
        runs["faults"] = delivery_run(
            ctx, seeded, tag="faults", faults=scale.fault_rates, timeout=scale.timeout
        )
        results["audiences"] = audiences.run(ctx, scale, load_rate=rate, progress=progress)
        results["cost"] = runs["mixed_max"]["cost"]
        receipts = {
            "url": f"{fakes.webhook}/hooks/floor",
            "secret": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        }
        for name, module, users, extra in (
            ("peer", "bench.peer", scale.peer_users, {}),
            ("floor", "bench.floor", scale.floor_users, {}),
            ("floor_receipts", "bench.floor", scale.floor_users, {"floor_receipts": receipts}),
        ):
            progress(f"{name}: {users} Web Push + {users} FCM messages")
            spec = {**rival_spec(fakes, database_url, users, scale.q_workers), **extra}
            results[name] = rival_run(fakes, module, spec, workdir / f"{name}.log")
        results["comparison"], results["ratios"] = _comparison(results)
    finally:
        ctx.sampler.stop()
        stack.stop()
    results["ok"] = all(
        part.get("ok", True)
        for part in (
            results.get("accept", {}),
            *results.get("delivery", {}).values(),
            *results.get("audiences", {}).values(),
        )
    )
    return results


def stacks_run(ctx: Context, scale: Scale) -> dict[str, Any]:
    """The mixed maximum-rate run on `scale.stacks` stacks at once, one PostgreSQL under all.

    The stacks after the first are started for this run and stopped after it: every other run
    measures one stack alone. Each web server takes its share of the bulk sends; every
    cluster's workers take whatever the queue holds, whoever accepted it.
    """
    stack = ctx.stack
    stack.start_more(scale.stacks - 1)
    try:
        urls = [stack.web_url, *(other.web_url for other in stack.others)]
        seeded = seed_app(stack.fakes, "mixed_stacks", scale.mixed_users)
        # Bulk sends of 500 users, as the one-stack run; fewer when the run is too small to
        # give every stack's two clients a few requests (the smoke test).
        burst = max(1, min(500, scale.mixed_users // (4 * scale.stacks)))
        return delivery_run(
            ctx,
            seeded,
            tag="mixed_stacks",
            timeout=scale.timeout,
            web_urls=urls,
            burst=burst,
            wal_detail=True,
        )
    finally:
        stack.stop_more()


def stacks_summary(one: dict[str, Any], many: dict[str, Any]) -> dict[str, Any]:
    """N stacks against one: combined throughput and the correctness of the N-stack run."""
    rate_one, rate_many = one["pipeline"]["per_second"], many["pipeline"]["per_second"]
    return {
        "stacks": many.get("stacks"),
        "one_stack_per_second": rate_one,
        "combined_per_second": rate_many,
        "ratio": round(rate_many / rate_one, 2) if rate_one and rate_many else None,
        "lost": many["problems"].get("lost", 0),
        "duplicated": many["problems"].get("duplicated_at_provider", 0),
        "ok": many["ok"],
        "cpu_ms_per_message": many["cost"]["cpu_ms_per_message"],
    }


def run_stacks(
    scale: Scale, *, database_url: str, workdir: Path, progress: Any = print
) -> dict[str, Any]:
    """Only the mixed run on one stack and then on `scale.stacks` (the `--stacks` smoke test)."""
    stack, ctx = _start(scale, database_url, workdir)
    results: dict[str, Any] = {"meta": _meta(scale, database_url), "delivery": {}}
    try:
        seeded = seed_app(stack.fakes, "mixed_max", scale.mixed_users)
        one = results["delivery"]["mixed_max"] = delivery_run(
            ctx, seeded, tag="mixed_max", timeout=scale.timeout, wal_detail=True
        )
        progress(f"mixed on {scale.stacks} stacks")
        many = results["delivery"]["mixed_stacks"] = stacks_run(ctx, scale)
        results["stacks"] = stacks_summary(one, many)
    finally:
        ctx.sampler.stop()
        stack.stop()
    results["ok"] = all(run["ok"] for run in results["delivery"].values())
    return results


def _comparison(results: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    runs = results["delivery"]
    bars = {
        "keymaster": {
            "webpush": runs["webpush_only"]["pipeline"]["per_second"],
            "fcm": runs["fcm_only"]["pipeline"]["per_second"],
        }
    }
    ratios: dict[str, Any] = {}
    for name in ("peer", "floor", "floor_receipts"):
        rival = results.get(name) or {}
        if not rival.get("available") or "error" in rival:
            continue
        bars[name] = {p: (rival.get(p) or {}).get("per_second") for p in ("webpush", "fcm")}
        ratios[name] = {
            p: round(bars["keymaster"][p] / bars[name][p], 2)
            if bars["keymaster"][p] and bars[name][p]
            else None
            for p in ("webpush", "fcm")
        }
    return bars, ratios


def write(results: dict[str, Any], directory: Path = RESULTS, stem: str | None = None) -> Path:
    """Write the JSON and the plots as `<stem>.json` and `<stem>-*.png`; return the JSON's path.

    Without a `stem`, it is today's date, with `-2`, `-3`... added when a run of the same day
    is there already: a second run never overwrites the first's results.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if stem is None:
        today = dt.date.today().isoformat()
        stem, n = today, 1
        while (directory / f"{stem}.json").exists():
            n += 1
            stem = f"{today}-{n}"
    results["plots"] = report.plots(results, directory, stem)
    path = directory / f"{stem}.json"
    dump(path, results)
    return path


def soak(
    scale: Scale,
    *,
    database_url: str,
    workdir: Path,
    minutes: float,
    rate: float | None,
    progress: Any = print,
) -> dict[str, Any]:
    """Send at `rate` (default: 50% of a measured maximum) for `minutes`; RSS per process."""
    stack, ctx = _start(scale, database_url, workdir)
    results: dict[str, Any] = {"meta": _meta(scale, database_url)}
    try:
        if rate is None:
            progress("soak: measuring the maximum rate first")
            probe = seed_app(stack.fakes, "soak_probe", min(scale.mixed_users, 5000))
            measured = delivery_run(ctx, probe, tag="soak_probe", timeout=scale.timeout)
            rate = round((measured["pipeline"]["per_second"] or 2) / 4, 1)
            results["probe"] = {k: measured[k] for k in ("pipeline", "provider_per_second", "ok")}
        seeded = seed_app(stack.fakes, "soak", 2000)
        stack.fakes.reset()
        seconds = minutes * 60
        progress(f"soak: {rate} notifications/s for {minutes} min")
        series: dict[str, list[tuple[float, float]]] = {}
        stop = threading.Event()
        start = time.monotonic()

        def watch() -> None:
            while not stop.is_set():
                for group in ("web", "workers"):
                    for pid in ctx.sampler.groups[group]():
                        try:
                            rss = psutil.Process(pid).memory_info().rss / 2**20
                        except psutil.NoSuchProcess:
                            continue
                        if not rss:  # a process exiting (a recycled worker) has no pages left
                            continue
                        key = f"{group}:{pid}"
                        series.setdefault(key, []).append((time.monotonic() - start, rss))
                stop.wait(SOAK_SAMPLE_SECONDS)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        users = seeded.user_ids
        burst = scale.half_burst
        total = int(rate * seconds / burst)
        chunks = [[users[(i * burst + k) % len(users)] for k in range(burst)] for i in range(total)]
        accept = _paced(ctx, seeded, chunks, rate / burst)
        done = wait_done(seeded, timeout=scale.timeout, drive_sweep=False)
        stop.set()
        watcher.join(15)
        data = collect(ctx, seeded)
        results["soak"] = _soak_summary(series, seconds, rate, accept, done, data)
    finally:
        ctx.sampler.stop()
        stack.stop()
    return results


def _paced(ctx: Context, seeded: Any, chunks: list[list[str]], per_second: float) -> dict:
    import json

    from bench.delivery import BODY, TITLE

    def body(i: int) -> bytes:
        return json.dumps({"user_ids": chunks[i], "title": TITLE, "body": BODY}).encode()

    shots, elapsed = load.open_loop(
        f"{ctx.stack.web_url}/push/send/bulk",
        seeded.token,
        body,
        rate=per_second,
        seconds=len(chunks) / per_second,
    )
    return load.summarize(shots, elapsed, len(chunks[0]) if chunks else 0)


def _soak_summary(
    series: dict[str, list[tuple[float, float]]],
    seconds: float,
    rate: float,
    accept: dict[str, Any],
    done: dict[str, Any],
    data: dict[str, Any],
) -> dict[str, Any]:
    growth = rss_growth(series, seconds)
    generations = worker_generations(series)
    statuses: dict[str, int] = {}
    for *_, status, _attempts, _updated in data["deliveries"]:
        statuses[status] = statuses.get(status, 0) + 1
    provider_2xx = data["webpush_stats"]["delivered"] + data["fcm_stats"]["messages"]
    return {
        "seconds": seconds,
        "rate": rate,
        "accept": accept,
        "wait": done,
        "deliveries": statuses,
        "provider_2xx": provider_2xx,
        "receipts_received": data["webhook_stats"]["requests"],
        "ok": not done["timed_out"] and statuses.get("delivered", 0) == provider_2xx,
        "rss_growth": growth,
        "max_growth_pct": max((g["growth_pct"] for g in growth.values()), default=None),
        "worker_generations": generations,
        "series": {k: [(round(t, 1), round(r, 1)) for t, r in v] for k, v in series.items()},
    }


def rss_growth(
    series: dict[str, list[tuple[float, float]]], seconds: float
) -> dict[str, dict[str, float]]:
    """Each process's RSS from the end of its first minute (or tenth of the soak) to its last."""
    growth = {}
    warmup = min(60.0, seconds / 10)
    for key, points in series.items():
        # From each process's own warm-up on: a worker started late in the soak is still
        # loading its modules at its first sample.
        born = points[0][0] if points else 0.0
        warm = [rss for t, rss in points if t >= born + warmup]
        if len(warm) >= 2:
            growth[key] = {
                "after_warmup_mb": round(warm[0], 1),
                "end_mb": round(warm[-1], 1),
                "growth_pct": round((warm[-1] - warm[0]) / warm[0] * 100, 2),
            }
    return growth


def worker_generations(
    series: dict[str, list[tuple[float, float]]], interval: float = SOAK_SAMPLE_SECONDS
) -> dict[str, Any] | None:
    """The worker processes django-q2 recycled during the soak, and their RSS across generations.

    A worker is replaced after `Q_CLUSTER["recycle"]` tasks, so the processes sampled from the
    first sample to the last are the cluster's own (sentinel, monitor, pusher) and those that
    came and went are the workers. A leak in the delivery code would show as later
    generations peaking higher than the first ones (each peaks just before it is replaced).
    """
    if not series:
        return None
    first = min(p[0][0] for p in series.values() if p)
    last = max(p[-1][0] for p in series.values() if p)

    def lasted(points: list[tuple[float, float]]) -> bool:
        # Sampled in the first round and in the last (a round's samples are not simultaneous).
        return points[0][0] - first < interval / 2 and last - points[-1][0] < interval / 2

    replaced = sorted(
        (points[0][0], points[-1][0], max(rss for _, rss in points))
        for key, points in series.items()
        if key.startswith("workers:") and points and not lasted(points)
    )
    if len(replaced) < 2:
        return {"count": len(replaced)}
    k = max(1, min(3, len(replaced) // 2))
    early = statistics.median(peak for *_, peak in replaced[:k])
    late = statistics.median(peak for *_, peak in replaced[-k:])
    return {
        "count": len(replaced),
        "median_lifetime_s": round(statistics.median(end - born for born, end, _ in replaced), 1),
        "first_peak_mb": round(early, 1),
        "last_peak_mb": round(late, 1),
        "max_peak_mb": round(max(peak for *_, peak in replaced), 1),
        "growth_pct": round((late - early) / early * 100, 2),
    }
