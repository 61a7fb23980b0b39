"""Broadcast and schedule phases: a 100,000-recipient broadcast; 1,000 sends scheduled over a
minute under 50% load.

The broadcast: one `POST /push/send/broadcast` to every seeded user (one FCM token each). It
measures the answer's time; the fan-out rate (notifications made / (the fan-out's end, the
broadcast's `completed_at`, − its acceptance, `created_at`)); the end-to-end rate (finished
deliveries / (last receipt at the webhook fake − acceptance)); and accounts for every message
as the delivery phases do (bench.delivery.account: 0 lost, 0 duplicated), plus one
notification per recipient, none twice.

The schedule: `scheduled` sends (one user each, `/push/send/batch` with a `send_at` per message)
spread evenly over `window` seconds starting a few seconds ahead, while other users of the same
app get paced bulk sends at `load_rate` notifications/s (half the measured maximum in a full
run). Lateness per message = the FCM fake's time of its 2xx − its `send_at`: p50/p99/max, and
how many went out early (never allowed). Then every message of the app is accounted for.

`python -m bench.audiences_only [--scale F] [--load-rate R]` runs these two phases alone on a
fresh stack.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from django.utils import timezone

from bench import load
from bench.delivery import (
    BODY,
    TITLE,
    Context,
    Meter,
    account,
    collect,
    send_users,
    wait_done,
)
from bench.seed import seed_app
from push.models import Broadcast, Notification

SCHEDULE_LEAD = 8.0  # seconds between the last scheduling request and the first send_at


def broadcast_phase(ctx: Context, users: int, *, timeout: float = 600) -> dict[str, Any]:
    """Broadcast to `users` users with one FCM token each; measure and account for it all."""
    fakes = ctx.stack.fakes
    seeded = seed_app(fakes, "broadcast", users, webpush=False)
    fakes.reset()
    started = timezone.now()
    with Meter(ctx) as meter:
        t0 = time.monotonic()
        answer = requests.post(
            f"{ctx.stack.web_url}/push/send/broadcast",
            json={"title": TITLE, "body": BODY, "data": {"run": "broadcast"}},
            headers={"Authorization": f"Bearer {seeded.token}"},
            timeout=60,
        )
        answered = time.monotonic() - t0
        body = answer.json()
        broadcast_id = body.get("broadcast_id")
        fan_out = _fan_out_wait(broadcast_id, timeout) if answer.status_code == 202 else {}
        done = wait_done(seeded, timeout=timeout, drive_sweep=False, fakes=fakes, since=started)
    data = collect(ctx, seeded)
    result = account(seeded, data)
    made = Notification.objects.filter(broadcast_id=broadcast_id)
    distinct = made.values("user_id").distinct().count() if broadcast_id else 0
    result["problems"]["notifications_missing"] = max(0, users - result["notifications"])
    result["problems"]["notifications_twice_for_a_user"] = result["notifications"] - distinct
    finished = result["pipeline"]["finished_deliveries"]
    last_receipt = max((r["time"] for r in data["webhook"]), default=None)
    accepted = fan_out.get("accepted_at")
    delivered = sum(v for k, v in result["by_status"].items() if k.endswith("_delivered"))
    result.update(
        users=users,
        status=answer.status_code,
        recipients=body.get("recipients"),
        answer_seconds=round(answered, 3),
        fan_out=fan_out,
        end_to_end_per_second=(
            round(finished / (last_receipt - accepted), 1)
            if accepted and last_receipt and last_receipt > accepted
            else None
        ),
        wait=done,
        cost=meter.cost(delivered, result["notifications"]),
    )
    result["ok"] = (
        answer.status_code == 202
        and not done["timed_out"]
        and not fan_out.get("timed_out")
        and not any(result["problems"].values())
    )
    return result


def _fan_out_wait(broadcast_id: str, timeout: float) -> dict[str, Any]:
    """Wait for the fan-out to end; its rate from acceptance to its end (as the database says)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        broadcast = Broadcast.objects.get(pk=broadcast_id)
        if broadcast.completed_at is not None:
            made = Notification.objects.filter(broadcast_id=broadcast_id).count()
            seconds = (broadcast.completed_at - broadcast.created_at).total_seconds()
            return {
                "notifications": made,
                "seconds": round(seconds, 3),
                "per_second": round(made / seconds, 1) if seconds > 0 else None,
                "accepted_at": broadcast.created_at.timestamp(),
                "status": broadcast.status,
            }
        time.sleep(0.05)
    return {"timed_out": True}


def schedule_phase(
    ctx: Context,
    scheduled: int,
    *,
    window: float = 60.0,
    load_rate: float = 500.0,
    timeout: float = 600,
) -> dict[str, Any]:
    """Schedule `scheduled` sends over `window` s under `load_rate`/s of sends; their lateness."""
    fakes = ctx.stack.fakes
    load_users = max(1, int(load_rate * (window + SCHEDULE_LEAD + 2)))
    seeded = seed_app(fakes, "scheduled", scheduled + load_users, webpush=False)
    targets, others = seeded.user_ids[:scheduled], seeded.user_ids[scheduled:]
    fakes.reset()
    started = timezone.now()
    first = datetime.now(UTC) + timedelta(seconds=SCHEDULE_LEAD)
    send_at = {
        user: first + timedelta(seconds=window * n / scheduled) for n, user in enumerate(targets)
    }
    batches = [targets[i : i + 500] for i in range(0, len(targets), 500)]

    def batch(i: int) -> bytes:
        messages = [
            {"user_id": u, "title": TITLE, "body": BODY, "send_at": send_at[u].isoformat()}
            for u in batches[i]
        ]
        return json.dumps({"notifications": messages}).encode()

    with Meter(ctx) as meter:
        shots, _ = load.closed_loop(
            f"{ctx.stack.web_url}/push/send/batch",
            seeded.token,
            batch,
            concurrency=1,
            count=len(batches),
        )
        # The other users' sends, paced, until after the last scheduled one is due.
        loaded = send_users(ctx, seeded, others, rate=load_rate, burst=10, tag="load")
        done = wait_done(seeded, timeout=timeout, drive_sweep=False, fakes=fakes, since=started)
    data = collect(ctx, seeded)
    result = account(seeded, data)
    token_of = seeded.fcm_token_of
    first_2xx: dict[str, float] = {}
    for token, at in data["fcm_times"]:
        first_2xx[token] = min(at, first_2xx.get(token, at))
    lateness = [
        first_2xx[token_of[u]] - send_at[u].timestamp() for u in targets if token_of[u] in first_2xx
    ]
    result["problems"]["scheduled_not_sent"] = scheduled - len(lateness)
    result["problems"]["sent_early"] = sum(1 for late in lateness if late < 0)
    delivered = sum(v for k, v in result["by_status"].items() if k.endswith("_delivered"))
    result.update(
        scheduled=scheduled,
        window_seconds=window,
        scheduling_requests={
            "statuses": sorted({s.status for s in shots}),
            "count": len(shots),
        },
        # What the box delivered meanwhile: a load above it builds a backlog that scheduled
        # sends wait behind (their deliveries are claimed oldest due first).
        load={
            "rate": load_rate,
            "users": len(others),
            "accepted_requests": loaded.get("accepted"),
            "unanswered_requests": loaded.get("errors", {}).get("0", 0),
        },
        lateness_s={
            "p50": _r(load.percentile(lateness, 50)),
            "p99": _r(load.percentile(lateness, 99)),
            "max": _r(max(lateness, default=None)),
            "count": len(lateness),
        },
        wait=done,
        cost=meter.cost(delivered, result["notifications"]),
    )
    result["ok"] = (
        all(s.status == 202 for s in shots)
        and not done["timed_out"]
        and not any(result["problems"].values())
    )
    return result


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run(
    ctx: Context, scale: Any, *, load_rate: float, progress: Any = print, only: str = ""
) -> dict[str, Any]:
    """Both phases (or `only` one), at `scale` (broadcast_users, scheduled_sends, _window)."""
    results: dict[str, Any] = {}
    if only in ("", "broadcast"):
        progress(f"broadcast: {scale.broadcast_users} recipients")
        results["broadcast"] = broadcast_phase(ctx, scale.broadcast_users, timeout=scale.timeout)
        progress(_broadcast_line(results["broadcast"]))
    if only in ("", "scheduled"):
        progress(
            f"scheduled: {scale.scheduled_sends} sends over {scale.scheduled_window} s"
            f" at {load_rate} notifications/s of other sends"
        )
        results["scheduled"] = schedule_phase(
            ctx,
            scale.scheduled_sends,
            window=scale.scheduled_window,
            load_rate=load_rate,
            timeout=scale.timeout,
        )
        progress(_scheduled_line(results["scheduled"]))
    return results


def _broadcast_line(b: dict[str, Any]) -> str:
    fan = b.get("fan_out", {})
    return (
        f"broadcast to {b['users']}: answered {b['status']} in {b['answer_seconds']} s;"
        f" fan-out {fan.get('notifications')} notifications in {fan.get('seconds')} s"
        f" = {fan.get('per_second')}/s; end to end {b['end_to_end_per_second']}/s"
        f" ({b['pipeline']['finished_deliveries']} deliveries); ok={b['ok']}"
        f" problems={ {k: v for k, v in b['problems'].items() if v} }"
    )


def _scheduled_line(s: dict[str, Any]) -> str:
    late = s["lateness_s"]
    return (
        f"scheduled {s['scheduled']} over {s['window_seconds']} s under"
        f" {s['load']['rate']}/s: lateness p50 {late['p50']} s, p99 {late['p99']} s,"
        f" max {late['max']} s; ok={s['ok']}"
        f" problems={ {k: v for k, v in s['problems'].items() if v} }"
    )


def headline(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The broadcast and schedule rows of the benchmark's table (bench.report.table)."""
    parts = results.get("audiences")
    if not parts:
        return []
    b, s = parts["broadcast"], parts["scheduled"]
    fan, late = b.get("fan_out", {}), s["lateness_s"]
    lost = {k: v for k, v in {**b["problems"], **s["problems"]}.items() if v}
    return [
        (f"broadcast to {b['users']:,}: API answer", f"{b['answer_seconds']} s", "≤ 1 s"),
        ("broadcast fan-out", f"{fan.get('per_second')} notifications/s", "≥ 20,000/s"),
        ("broadcast end to end (deliveries + receipts)", f"{b['end_to_end_per_second']}/s", "—"),
        (
            f"{s['scheduled']:,} scheduled over {s['window_seconds']:.0f} s, lateness p50 / p99",
            f"{late['p50']} / {late['p99']} s",
            "p99 ≤ 2 s",
        ),
        ("broadcast + scheduled: lost, duplicated", str(lost or 0), "0"),
    ]
