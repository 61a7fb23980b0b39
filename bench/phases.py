"""The accept phase (single, bulk and batch sends) and the peer / floor comparison."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django_q.models import OrmQ

from bench import load
from bench.delivery import BODY, TITLE, Context, Meter
from bench.seed import SeededApp
from bench.stack import ROOT, Fakes
from push.models import Notification
from push.transports.webpush import VapidKey


def _stored(seeded: SeededApp) -> int:
    return Notification.objects.filter(app=seeded.app).count()


def _settled(seeded: SeededApp, *, quiet: float = 1.0, limit: float = 120.0) -> int:
    """Wait until nothing is being stored any more; return the count.

    Requests a saturated step gave up on are still queued in gunicorn and run after it: without
    this, they ran during the next step and were measured as part of it.
    """
    deadline = time.monotonic() + limit
    count = _stored(seeded)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        count, previous = _stored(seeded), count
        if count == previous:
            break
    return count


def accept_phase(
    ctx: Context,
    seeded: SeededApp,
    *,
    rates: list[float],
    seconds: float,
    bulk_requests: int,
    batch_size: int,
) -> dict[str, Any]:
    """Measure accepting sends with the workers frozen, then drop the queued backlog.

    Freezing the workers gives the web processes and PostgreSQL the machine to themselves: on
    two shared cores, delivering the accepted messages at the same time would measure the
    delivery path twice. The delivery runs measure both paths together.
    """
    users = seeded.user_ids
    base = ctx.stack.web_url
    result: dict[str, Any] = {"single": [], "users": len(users)}

    def single(i: int) -> bytes:
        content = {"user_id": users[i % len(users)], "title": TITLE, "body": BODY}
        return json.dumps(content).encode()

    ctx.stack.pause_workers()
    try:
        # Not measured: each web process's first requests open its database connection and
        # prepare its statements.
        warm = ctx.stack.web_workers * 10
        load.closed_loop(
            f"{base}/push/send", seeded.token, single, concurrency=ctx.stack.web_workers, count=warm
        )
        for rate in rates:
            before = _settled(seeded)
            with Meter(ctx) as meter:
                shots, elapsed = load.open_loop(
                    f"{base}/push/send", seeded.token, single, rate=rate, seconds=seconds
                )
            step = load.summarize(shots, elapsed, 1)
            step["offered_rate"] = rate
            step["stored"] = _stored(seeded) - before
            step["cost"] = meter.cost(step["accepted"], step["accepted"])
            result["single"].append(step)
        batch_users = users[:batch_size]
        for kind in ("bulk", "batch"):

            def many(i: int, kind: str = kind) -> bytes:
                if kind == "bulk":
                    content: dict[str, Any] = {"user_ids": batch_users, "title": TITLE}
                    content["body"] = BODY
                else:
                    content = {
                        "notifications": [
                            {"user_id": u, "title": f"{TITLE} #{n}", "body": BODY}
                            for n, u in enumerate(batch_users)
                        ]
                    }
                return json.dumps(content).encode()

            before = _settled(seeded)
            with Meter(ctx) as meter:
                shots, elapsed = load.closed_loop(
                    f"{base}/push/send/{kind}",
                    seeded.token,
                    many,
                    concurrency=ctx.stack.web_workers,  # one request per web process
                    count=bulk_requests,
                )
            step = load.summarize(shots, elapsed, len(batch_users))
            step["batch_size"] = len(batch_users)
            step["stored"] = _stored(seeded) - before
            accepted = step["accepted"] * len(batch_users)
            step["cost"] = meter.cost(accepted, accepted)
            result[kind] = step
    finally:
        # The backlog is not delivered: the delivery runs measure delivery on their own.
        OrmQ.objects.all().delete()
        Notification.objects.filter(app=seeded.app).delete()
        ctx.stack.resume_workers()
    expected = sum(s["accepted"] for s in result["single"]) + sum(
        result[k]["accepted"] * result[k]["batch_size"] for k in ("bulk", "batch")
    )
    stored = sum(s["stored"] for s in result["single"]) + sum(
        result[k]["stored"] for k in ("bulk", "batch")
    )
    steps = [*result["single"], result["bulk"], result["batch"]]
    unanswered = sum(s["errors"].get("0", 0) for s in steps)
    result["check"] = {
        "accepted_notifications": expected,
        "stored": stored,
        "unanswered_requests": unanswered,
    }
    # Every 202 stored; a request the client gave up on (status 0) may have been stored too.
    # Any HTTP error (4xx/5xx) is a failure.
    result["ok"] = (
        expected <= stored
        and all(set(s["errors"]) <= {"0"} for s in steps)
        and (unanswered > 0 or expected == stored)
    )
    return result


def rival_spec(fakes: Fakes, database_url: str, users: int, workers: int) -> dict[str, Any]:
    """The contract spec for the peer and the floor: fresh tokens and subscriptions at the fakes."""
    vapid = VapidKey.generate(settings.PUSH_VAPID_SUBJECT)
    subscriptions: list[dict] = []
    while len(subscriptions) < users:
        body = {
            "count": min(5000, users - len(subscriptions)),
            "applicationServerKey": vapid.public_key_b64url,
        }
        subscriptions += fakes.control("webpush", "subscriptions/bulk", body)["subscriptions"]
    stamp = f"{time.time_ns():x}"
    return {
        "fcm_url": fakes.fcm,
        "fcm_service_account_file": fakes.service_account_file,
        "fcm_tokens": [f"rival-{stamp}-{n:07d}-" + "f" * 100 for n in range(users)],
        "webpush_subscriptions": [
            {"endpoint": s["endpoint"], "keys": s["keys"]} for s in subscriptions
        ],
        "vapid_private_key_pem": vapid.private_key_pem,
        "vapid_subject": settings.PUSH_VAPID_SUBJECT,
        "database_url": database_url + "_peer",
        "workers": workers,
        "title": TITLE,
        "body": BODY,
        "data": {"run": "rival"},
    }


def rival_run(fakes: Fakes, module: str, spec: dict[str, Any], log: Path) -> dict[str, Any]:
    """Run `module.run(spec)` in its own process; add what the fakes counted meanwhile."""
    if importlib.util.find_spec(module) is None:
        return {"available": False, "notes": f"{module} is not there yet"}
    fakes.reset()
    started = time.monotonic()
    with open(log, "w") as err:
        completed = subprocess.run(
            [sys.executable, "-m", "bench.call", module],
            cwd=ROOT,
            input=json.dumps(spec),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=1800,
        )
    if completed.returncode != 0:
        return {"available": True, "error": f"exit {completed.returncode}; see {log}"}
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["available"] = True
    result["wall_seconds"] = round(time.monotonic() - started, 2)
    result["fakes_counted"] = {
        "webpush_2xx": fakes.control("webpush", "stats", get=True)["delivered"],
        "fcm_2xx": fakes.control("fcm", "stats")["messages"],
        "webhook_requests": fakes.control("webhook", "stats", get=True)["requests"],
    }
    fakes.reset()
    return result
