"""One delivery run: send to seeded users through the API, wait, then account for every message.

Timestamps come from four clocks on one machine: the notification's `created_at` (accepted),
the fakes' time of each 2xx (delivered to the provider), the delivery's `updated_at` (status
recorded) and the webhook fake's time of each receipt. The checks compare what the database
says with what the fakes saw: nothing lost, nothing duplicated, every state the one the fakes'
answers call for, one receipt per finished delivery with signatures that verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.utils import timezone
from standardwebhooks import Webhook

from bench import load, sqlcount
from bench.profile import Profiler, per_message
from bench.seed import SeededApp
from bench.stack import Sampler, Stack, WalReader, pg_counters, pg_tables, pg_wal
from push.models import (
    Delivery,
    DeliveryStatus,
    Device,
    Notification,
    NotificationStatus,
    Receipt,
    ReceiptStatus,
)
from push.tasks import sweep

TITLE, BODY = "Your shift starts in 30 min", "Open GymOps to view details."
SIGNATURE_SAMPLE = 200
WEBHOOK_TOLERANCE = 300  # seconds, as Standard Webhooks verifies


@dataclass
class Context:
    """What a phase needs: the stack, the sampler."""

    stack: Stack
    sampler: Sampler


class Meter:
    """CPU per process group, SQL statements and PostgreSQL counters between start and stop."""

    def __init__(self, ctx: Context, wal_detail: bool = False) -> None:
        self.ctx = ctx
        self.wal_detail = wal_detail  # read this database's own WAL records (pg_walinspect)

    def __enter__(self) -> Meter:
        self.ctx.sampler.reset_peaks()
        self._cpu = self.ctx.sampler.mark()
        self._pg = pg_counters(self.ctx.stack.database_url)
        self._wal = pg_wal(self.ctx.stack.database_url)
        self._reader = WalReader(self.ctx.stack.database_url) if self.wal_detail else None
        self._tables = pg_tables(self.ctx.stack.database_url)
        self._sql = sqlcount.total(self.ctx.stack.sql_dir)
        self._t = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._t
        # Let every process write its statement count, and every backend flush its table
        # counters (PostgreSQL 15 flushes a backend's pending statistics at most once a second).
        time.sleep(max(sqlcount.INTERVAL + 0.2, 1.2))
        cpu = self.ctx.sampler.mark()
        url = self.ctx.stack.database_url
        pg = pg_counters(url)
        wal, tables = pg_wal(url), pg_tables(url)
        self.wal = {k: wal[k] - self._wal[k] for k in wal}
        if self._reader is not None:
            self.wal["database"] = self._reader.stop()
        self.tables = {}
        for name, now in tables.items():
            before = self._tables.get(name, {})
            change = {k: v - before.get(k, 0) for k, v in now.items()}
            if any(change.values()):
                self.tables[name] = change
        self.cpu = {k: round(cpu.get(k, 0) - self._cpu.get(k, 0), 3) for k in cpu}
        self.pg = {k: pg[k] - self._pg[k] for k in pg}
        self.sql = sqlcount.total(self.ctx.stack.sql_dir) - self._sql
        self.peaks = self.ctx.sampler.peaks_mb()

    def cost(self, messages: int, notifications: int) -> dict[str, Any]:
        """CPU ms per message by group, statements and commits per notification, peak RSS."""
        return {
            "cpu_seconds": self.cpu,
            "cpu_ms_per_message": {
                k: round(v * 1000 / messages, 3) if messages else None for k, v in self.cpu.items()
            },
            "sql_statements": self.sql,
            "sql_per_notification": round(self.sql / notifications, 2) if notifications else None,
            "pg": self.pg,
            "commits_per_notification": (
                round(self.pg["commits"] / notifications, 2) if notifications else None
            ),
            "peak_rss_mb": self.peaks,
            "wal": self.wal,
            "tables": self.tables,
            "per_delivered_message": self.per_message(messages),
        }

    def per_message(self, messages: int) -> dict[str, Any]:
        """The capacity model's inputs: what PostgreSQL does per delivered message.

        Statements are those Django ran (COPY bypasses its cursor wrapper); rows written and
        commits are this database's (pg_stat_database); WAL is the whole server's, so other
        databases' writes meanwhile are in it (the run's `wal_background_bytes_per_second`,
        measured before it, estimates them).
        """
        if not messages:
            return {}
        written = self.pg["inserted"] + self.pg["updated"] + self.pg["deleted"]
        return {
            "statements": round(self.sql / messages, 3),
            "commits": round(self.pg["commits"] / messages, 3),
            "rows_written": round(written / messages, 3),
            "rows_inserted": round(self.pg["inserted"] / messages, 3),
            "rows_updated": round(self.pg["updated"] / messages, 3),
            "rows_deleted": round(self.pg["deleted"] / messages, 3),
            "rows_fetched": round(self.pg["fetched"] / messages, 3),
            "wal_bytes": round(self.wal["wal_bytes"] / messages, 1),
            "wal_bytes_database": (
                round(self.wal["database"]["bytes"] / messages, 1)
                if self.wal.get("database")
                else None
            ),
            "wal_records": round(self.wal["wal_records"] / messages, 2),
            "postgres_cpu_ms": round(self.cpu.get("postgres", 0) * 1000 / messages, 4),
            "keymaster_cpu_ms": round(
                sum(self.cpu.get(k, 0) for k in ("web", "workers", "postgres")) * 1000 / messages,
                4,
            ),
        }


def send_users(
    ctx: Context,
    seeded: SeededApp,
    users: list[str],
    *,
    rate: float | None,
    burst: int,
    tag: str,
    web_urls: list[str] | None = None,
) -> dict[str, Any]:
    """Send one notification to each of `users` with bulk sends of `burst` users.

    With `rate` None, as fast as two clients can; else paced at `rate` notifications a second.
    With several `web_urls` (one per stack), the users are split between them, two clients
    each, all at once: each stack takes its share of the sends, as behind a load balancer.
    """
    chunks = [users[i : i + burst] for i in range(0, len(users), burst)]

    def body(i: int) -> bytes:
        content = {"user_ids": chunks[i], "title": TITLE, "body": BODY, "data": {"run": tag}}
        return json.dumps(content).encode()

    url = f"{ctx.stack.web_url}/push/send/bulk"
    if web_urls and len(web_urls) > 1 and rate is None:
        shots, elapsed = _split_closed_loop(web_urls, seeded.token, body, len(chunks))
    elif rate is None:
        shots, elapsed = load.closed_loop(url, seeded.token, body, concurrency=2, count=len(chunks))
    else:
        shots, elapsed = load.open_loop(
            url, seeded.token, body, rate=rate / burst, seconds=len(chunks) * burst / rate
        )
    summary = load.summarize(shots, elapsed, burst)
    summary["accepted_notifications"] = sum(len(s.body.get("notification_ids", [])) for s in shots)
    return summary


def _split_closed_loop(
    web_urls: list[str], token: str, body: Any, count: int
) -> tuple[list[load.Shot], float]:
    """Chunks i, i+n, i+2n... to stack i; every stack's clients at once."""
    import threading

    n = len(web_urls)
    results: list[tuple[list[load.Shot], float]] = [([], 0.0)] * n

    def one(k: int) -> None:
        mine = list(range(k, count, n))
        results[k] = load.closed_loop(
            f"{web_urls[k]}/push/send/bulk",
            token,
            lambda i: body(mine[i]),
            concurrency=2,
            count=len(mine),
        )

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [s for shots, _ in results for s in shots], max(e for _, e in results)


def wait_done(
    seeded: SeededApp,
    *,
    timeout: float,
    drive_sweep: bool,
    fakes: Any = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """Wait until every delivery of the app is final and every receipt is delivered.

    With `fakes` and `since` (when this run's sends began), the harness first waits for the
    webhook fake to have as many receipts as the run has deliveries, which costs the database
    nothing, and asks the database only then (or every 5 s). Counting the app's open rows four
    times a second read every row of it each time: up to a third of PostgreSQL's CPU in a
    40,000-delivery run, charged to Keymaster and taken from it.
    """
    app = seeded.app
    start = time.monotonic()
    last_sweep = next_check = 0.0
    open_deliveries = Delivery.objects.filter(
        app=app, status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING]
    )
    open_receipts = Receipt.objects.filter(
        app=app, status__in=[ReceiptStatus.PENDING, ReceiptStatus.SENDING]
    )
    expected = None
    if fakes is not None and since is not None:
        expected = Delivery.objects.filter(app=app, created_at__gte=since).count()
    while True:
        now = time.monotonic()
        if expected is None or now >= next_check or _receipts_at_fake(fakes) >= expected:
            waiting = open_deliveries.count()
            receipts = open_receipts.count() if not waiting else -1
            if waiting == 0 and receipts == 0:
                return {"timed_out": False, "seconds": round(time.monotonic() - start, 2)}
            if now - start > timeout:
                return {"timed_out": True, "open_deliveries": waiting, "open_receipts": receipts}
            next_check = now + 5.0
        if drive_sweep and now - last_sweep >= 1.0:
            # The scheduled sweeper runs every minute; retries here are due within seconds.
            sweep()
            last_sweep = time.monotonic()
        time.sleep(0.25)


def _receipts_at_fake(fakes: Any) -> int:
    return fakes.control("webhook", "stats", get=True)["requests"]


def collect(ctx: Context, seeded: SeededApp) -> dict[str, Any]:
    """Read what the database and the fakes recorded about this app's run."""
    fakes = ctx.stack.fakes
    webhook: list[dict] = []
    while True:
        page = fakes.control(
            "webhook", "received", {"offset": len(webhook), "limit": 5000}, get=True
        )["requests"]
        webhook += page
        if len(page) < 5000:
            break
    notifications = {
        str(n): (str(u), c.timestamp(), s)
        for n, u, c, s in Notification.objects.filter(app=seeded.app).values_list(
            "id", "user_id", "created_at", "status"
        )
    }
    deliveries = list(
        Delivery.objects.filter(app=seeded.app).values_list(
            "notification_id", "device_ref", "platform", "status", "attempts", "updated_at"
        )
    )
    return {
        "webpush_times": fakes.control("webpush", "times", get=True)["times"],
        "fcm_times": fakes.control("fcm", "times")["times"],
        "webpush_stats": fakes.control("webpush", "stats", get=True),
        "fcm_stats": fakes.control("fcm", "stats"),
        "webhook_stats": fakes.control("webhook", "stats", get=True),
        "webhook": webhook,
        "notifications": notifications,
        "deliveries": deliveries,
        "devices_left": set(
            map(str, Device.objects.filter(app=seeded.app).values_list("id", flat=True))
        ),
    }


def account(seeded: SeededApp, data: dict[str, Any]) -> dict[str, Any]:
    """Check every message against the fakes and compute throughput and latencies."""
    ok_times: dict[tuple[str, str], list[float]] = defaultdict(list)
    # Each property builds its dict anew: read once, not per message (quadratic at 100,000).
    user_of_subscription, user_of_fcm_token = seeded.user_of_subscription, seeded.user_of_fcm_token
    for sub, t in data["webpush_times"]:
        ok_times[("webpush", user_of_subscription.get(sub, "?"))].append(t)
    for token, t in data["fcm_times"]:
        ok_times[("fcm", user_of_fcm_token.get(token, "?"))].append(t)
    receipts: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for request in data["webhook"]:
        payload = json.loads(request["body"])
        receipts[(payload["notification_id"], payload["device_id"])].append(
            {**request, "payload": payload}
        )
    notifications = data["notifications"]
    counts: dict[str, int] = defaultdict(int)
    lat: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    problems: dict[str, int] = defaultdict(int)
    delivered_keys, retries, by_notification = set(), 0, defaultdict(list)
    finished_receipts: list[dict] = []
    for notification_id, device_ref, platform, status, attempts, updated_at in data["deliveries"]:
        user, accepted, _ = notifications[str(notification_id)]
        provider = "webpush" if platform == "web" else "fcm"
        counts[f"{provider}_{status}"] += 1
        by_notification[str(notification_id)].append(status)
        retries += max(0, attempts - 1)
        if status in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING):
            problems["lost"] += 1
            continue
        mine = receipts.get((str(notification_id), str(device_ref)), [])
        problems["missing_receipts"] += not mine
        problems["duplicate_receipts"] += max(0, len(mine) - 1)
        problems["receipt_status_wrong"] += any(r["payload"]["status"] != status for r in mine)
        finished_receipts += mine[:1]
        if status == DeliveryStatus.INVALID_TOKEN:
            problems["dead_device_kept"] += str(device_ref) in data["devices_left"]
        if status != DeliveryStatus.DELIVERED:
            continue
        delivered_keys.add((provider, user))
        times = ok_times.get((provider, user), [])
        if not times:
            problems["delivered_without_provider_2xx"] += 1
            continue
        provider_t = min(times)
        lat[provider]["accept_to_provider"].append(provider_t - accepted)
        lat[provider]["accept_to_status"].append(updated_at.timestamp() - accepted)
        if mine:
            lat[provider]["accept_to_receipt"].append(mine[0]["time"] - accepted)
    problems["duplicated_at_provider"] = sum(max(0, len(t) - 1) for t in ok_times.values())
    problems["provider_2xx_not_recorded"] = len(set(ok_times) - delivered_keys)
    problems["extra_receipts"] = len(data["webhook"]) - sum(
        len(v) for k, v in receipts.items() if k[0] in notifications
    )
    for notification_id, statuses in by_notification.items():
        expected = (
            NotificationStatus.DELIVERED
            if DeliveryStatus.DELIVERED in statuses
            else NotificationStatus.FAILED
        )
        problems["notification_status_wrong"] += notifications[notification_id][2] != expected
    expected = _expected_from_fakes(data)
    observed = {
        "invalid_token": counts["webpush_invalid_token"] + counts["fcm_invalid_token"],
        "retries": retries,
        "failed": counts["webpush_failed"] + counts["fcm_failed"],
    }
    problems["invalid_token_vs_fakes"] = abs(observed["invalid_token"] - expected["invalid_token"])
    problems["retries_vs_fakes"] = abs(observed["retries"] - expected["throttled"])
    problems["failed_unexpectedly"] = observed["failed"]
    signatures = _verify_signatures(seeded.webhook_secret, finished_receipts)
    problems["bad_signatures"] = signatures["failed"]
    all_ok_times = {p: [t for (q, _), ts in ok_times.items() if q == p for t in ts] for p in lat}
    accepted_times = [a for _, a, _ in notifications.values()]
    receipt_times = [r["time"] for r in data["webhook"]]
    finished = len(data["deliveries"]) - problems["lost"]
    return {
        "notifications": len(notifications),
        "deliveries": len(data["deliveries"]),
        "by_status": dict(sorted(counts.items())),
        "expected_from_fakes": expected,
        "observed": observed,
        "signatures": signatures,
        "problems": {k: v for k, v in sorted(problems.items())},
        "ok": not any(problems.values()),
        "provider_per_second": {p: _rate(all_ok_times.get(p, [])) for p in ("webpush", "fcm")},
        "pipeline": {
            "finished_deliveries": finished,
            "seconds": round(max(receipt_times) - min(accepted_times), 3)
            if receipt_times
            else None,
            "per_second": (
                round(finished / (max(receipt_times) - min(accepted_times)), 1)
                if receipt_times and max(receipt_times) > min(accepted_times)
                else None
            ),
        },
        "latency_ms": {
            provider: {name: _pcts(values) for name, values in kinds.items()}
            for provider, kinds in lat.items()
        },
        "cdf_ms": {
            provider: {name: _cdf(values) for name, values in kinds.items()}
            for provider, kinds in lat.items()
        },
    }


def _expected_from_fakes(data: dict[str, Any]) -> dict[str, int]:
    web = data["webpush_stats"]["statuses"]
    fcm = data["fcm_stats"]["outcomes"]
    return {
        "delivered": data["webpush_stats"]["delivered"] + data["fcm_stats"]["messages"],
        "invalid_token": int(web.get("410", 0)) + int(fcm.get("UNREGISTERED", 0)),
        "throttled": int(web.get("429", 0)) + int(fcm.get("QUOTA_EXCEEDED", 0)),
    }


def _verify_signatures(secret: str, receipts: list[dict]) -> dict[str, int]:
    # Standard Webhooks refuses a timestamp more than 5 minutes from *now*; the harness checks
    # at the end of a run that can be longer than that, so the tolerance is applied to when the
    # receipt arrived at the webhook fake, and the signature is checked with the library's own
    # signing function.
    sample = random.Random(0).sample(receipts, min(SIGNATURE_SAMPLE, len(receipts)))
    hook = Webhook(secret)
    verified = failed = 0
    for receipt in sample:
        body = base64.b64decode(receipt["body_b64"])
        headers = {k.lower(): v for k, v in receipt["headers"].items()}
        legacy = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        try:
            sent_at = float(headers["webhook-timestamp"])
            expected = hook.sign(
                headers["webhook-id"], datetime.fromtimestamp(sent_at, tz=UTC), body.decode()
            )
            good = (
                abs(receipt["time"] - sent_at) <= WEBHOOK_TOLERANCE
                and expected in headers["webhook-signature"].split(" ")
                and hmac.compare_digest(headers.get("x-keymaster-signature", ""), legacy)
            )
        except (KeyError, ValueError):
            good = False
        verified += good
        failed += not good
    return {"sampled": len(sample), "verified": verified, "failed": failed}


def _rate(times: list[float]) -> float | None:
    if len(times) < 2 or max(times) <= min(times):
        return None
    return round(len(times) / (max(times) - min(times)), 1)


def _pcts(values: list[float]) -> dict[str, float | None]:
    ms = [v * 1000 for v in values]
    return {
        "count": len(ms),
        "p50": _round(load.percentile(ms, 50)),
        "p90": _round(load.percentile(ms, 90)),
        "p99": _round(load.percentile(ms, 99)),
        "max": _round(max(ms) if ms else None),
    }


def _cdf(values: list[float], points: int = 100) -> list[float]:
    """The latency (ms) at each percent 1..100: enough to draw a CDF."""
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return []
    return [round(ms[min(len(ms) - 1, int(len(ms) * q / points))], 2) for q in range(points)]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def delivery_run(
    ctx: Context,
    seeded: SeededApp,
    *,
    tag: str,
    rate: float | None = None,
    burst: int = 500,
    faults: dict[str, Any] | None = None,
    timeout: float = 600,
    web_urls: list[str] | None = None,
    profile: Path | None = None,
    wal_detail: bool = False,
) -> dict[str, Any]:
    """Send to every seeded user, wait for every receipt, and account for every message.

    `web_urls`: send through these stacks' web servers (`--stacks N`); `profile`: record a
    py-spy profile of the workers into this file meanwhile (`--profile`).
    """
    ctx.stack.fakes.reset()
    if faults:
        ctx.stack.fakes.set_faults(**faults)
    started = timezone.now()
    profiler = None
    if profile is not None and ctx.stack.workers is not None:
        profiler = Profiler(ctx.stack.workers.pid, profile).start()
    with Meter(ctx, wal_detail=wal_detail) as meter:
        accept = send_users(
            ctx, seeded, seeded.user_ids, rate=rate, burst=burst, tag=tag, web_urls=web_urls
        )
        done = wait_done(
            seeded,
            timeout=timeout,
            drive_sweep=bool(faults),
            fakes=ctx.stack.fakes,
            since=started,
        )
        profiled = profiler.stop() if profiler is not None else None
    result = account(seeded, collect(ctx, seeded))
    if faults:
        ctx.stack.fakes.reset()
    delivered = sum(v for k, v in result["by_status"].items() if k.endswith("_delivered"))
    result.update(
        tag=tag,
        started=started.isoformat(),
        offered_rate=rate,
        accept=accept,
        wait=done,
        faults=faults,
        cost=meter.cost(delivered, result["notifications"]),
        seconds=round(meter.seconds, 2),
    )
    if profiled is not None:
        workers_ms = result["cost"]["cpu_ms_per_message"].get("workers")
        result["profile"] = {**profiled, "ms_per_message": per_message(profiled, workers_ms)}
    if web_urls:
        result["stacks"] = len(web_urls)
    if done["timed_out"]:
        result["ok"] = False
    return result
