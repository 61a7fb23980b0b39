"""The receipt outbox: persisted with the delivery outcome, then POSTed and retried for 3 days."""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from keymaster import metrics
from keymaster.bulk import objects_insert
from keymaster.outage import through_db_outage
from push.delivery.backoff import backoff_seconds
from push.delivery.outbox import outbox_claim, outbox_isolate, outbox_lease, outbox_sweep
from push.delivery.queue import receipts_enqueue
from push.delivery.runtime import runtime
from push.models import (
    Delivery,
    PushConfig,
    Receipt,
    ReceiptAttempt,
    ReceiptStatus,
)
from push.transports.base import OutcomeKind, outcome_for_bug
from push.transports.webhook import WebhookCall, WebhookResult

logger = logging.getLogger(__name__)

RETRY_FOR = timedelta(days=3)
BACKOFF_BASE = 10.0
BACKOFF_CAP = 6 * 3600.0


def receipt_payload(delivery: Delivery, at: datetime) -> str:
    """The guide's receipt JSON for one finished delivery (the exact bytes that are signed).

    A broadcast's notification adds `broadcast_id`; every other receipt is the guide's exactly.
    """
    body = {
        "notification_id": str(delivery.notification_id),
        "user_id": str(delivery.notification.user_id),
        "device_id": str(delivery.device_ref),
        "app_id": str(delivery.app_id),
        "status": delivery.status,
        "error": delivery.error or None,
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if delivery.notification.broadcast_id:
        body["broadcast_id"] = str(delivery.notification.broadcast_id)
    return json.dumps(body, separators=(",", ":"))


def receipts_create(deliveries: Iterable[Delivery], *, claim: bool = False) -> list[Receipt]:
    """Put a receipt in the outbox for each finished delivery of an app with a live webhook.

    Unclaimed, they are queued for a receipts task. Claimed (`claim=True`), they are leased to
    the caller, which POSTs them with `receipts_post` once its transaction has committed: no
    queue round trip, so a receipt follows its delivery at once. If the caller dies first, the
    lease runs out and the sweeper queues them like any other.
    """
    deliveries = list(deliveries)
    app_ids = {d.app_id for d in deliveries}
    live = set(
        PushConfig.objects.filter(app_id__in=app_ids, webhook_disabled_at__isnull=True)
        .exclude(webhook_url="")
        .values_list("app_id", flat=True)
    )
    now = timezone.now()
    lease = {"status": ReceiptStatus.SENDING, "attempts": 1, "claimed_until": outbox_lease(now)}
    receipts = [
        Receipt(
            app_id=d.app_id,
            delivery=d,
            webhook_id=f"msg_{uuid.uuid4().hex}",
            payload=receipt_payload(d, now),
            created_at=now,
            next_attempt_at=now,
            enqueued_at=now,
            **(lease if claim else {}),
        )
        for d in deliveries
        if d.app_id in live
    ]
    objects_insert(receipts)
    if not claim:
        receipts_enqueue([r.id for r in receipts])
    return receipts


def receipts_claim(receipt_ids: list[int], *, now: datetime | None = None) -> list[int]:
    """Claim the pending, due receipts among `receipt_ids`."""
    return outbox_claim(
        Receipt,
        receipt_ids,
        waiting=ReceiptStatus.PENDING,
        sending=ReceiptStatus.SENDING,
        now=now or timezone.now(),
    )


def receipts_send(receipt_ids: list[int]) -> dict[str, int]:
    """Claim a chunk of queued receipts, POST them and record what each answered."""
    claimed = receipts_claim(receipt_ids)
    if not claimed:
        return {}
    return receipts_post(list(Receipt.objects.filter(id__any=claimed)))


def receipts_post(receipts: list[Receipt]) -> dict[str, int]:
    """POST claimed receipts to their webhooks and record what each answered."""
    if not receipts:
        return {}
    # One app whose webhook secret cannot be read must not hold up the others' receipts.
    configs, unreadable = outbox_isolate(_configs_load, list({r.app_id for r in receipts}))
    broken = [
        (r, WebhookResult(outcome_for_bug(unreadable[r.app_id]), None, 0))
        for r in receipts
        if r.app_id in unreadable
    ]
    sendable = [r for r in receipts if _webhook_live(configs.get(r.app_id))]
    calls = [
        WebhookCall(
            url=configs[r.app_id].webhook_url,
            secret=configs[r.app_id].webhook_secret,
            previous_secrets=webhook_secrets_previous(configs[r.app_id]),
            webhook_id=r.webhook_id,
            body=r.payload.encode(),
        )
        for r in sendable
    ]
    rt = runtime()
    results = rt.run(rt.webhook.send_many(calls)) if calls else []
    answered = {r.id for r in sendable} | {r.id for r, _ in broken}
    stopped = [r for r in receipts if r.id not in answered]
    # Posted is posted: if the database went away meanwhile, wait for it rather than post again.
    record = through_db_outage(receipts_record)
    metrics.receipts_answered(zip(sendable, results, strict=True), len(stopped))
    return record([*zip(sendable, results, strict=True), *broken], stopped)


def _configs_load(app_ids: list[Any]) -> dict[Any, PushConfig]:
    # Only the webhook's fields: a receipt has no use for the app's push credentials.
    configs = PushConfig.objects.filter(app_id__in=app_ids).only(
        "app_id",
        "webhook_url",
        "webhook_secret",
        "webhook_secret_previous",
        "webhook_secret_previous_until",
        "webhook_disabled_at",
    )
    return {config.app_id: config for config in configs}


def _webhook_live(config: PushConfig | None) -> bool:
    return bool(config and config.webhook_url and config.webhook_disabled_at is None)


def receipts_record(
    results: list[tuple[Receipt, WebhookResult]], stopped: list[Receipt]
) -> dict[str, int]:
    """Record each POST's answer: delivered, retry later, or give up (410 turns webhooks off)."""
    now = timezone.now()
    counts = {"delivered": 0, "retry": 0, "failed": len(stopped)}
    gone_apps: set[Any] = set()
    with transaction.atomic():
        objects_insert(
            [
                ReceiptAttempt(
                    receipt=receipt,
                    at=now,
                    status_code=result.status_code,
                    error=result.outcome.error or "",
                    duration_ms=result.duration_ms,
                )
                for receipt, result in results
            ]
        )
        same: dict[tuple, list[int]] = defaultdict(list)
        for receipt, result in results:
            fields = _after(receipt, result, now)
            counts[fields["_kind"]] += 1
            if result.outcome.error == "http_410":
                gone_apps.add(receipt.app_id)
            values = {k: v for k, v in fields.items() if not k.startswith("_")}
            if fields["_kind"] == "retry":  # each retry has its own jittered time
                Receipt.objects.filter(id=receipt.id, status=ReceiptStatus.SENDING).update(**values)
            else:
                same[tuple(sorted(values.items()))].append(receipt.id)
        # Delivered (or given-up) receipts with the same answer share their values: one UPDATE
        # for all of them, not one per receipt (the benchmark's largest cost per receipt).
        for values, ids in same.items():
            Receipt.objects.filter(id__any=ids, status=ReceiptStatus.SENDING).update(**dict(values))
        Receipt.objects.filter(id__any=[r.id for r in stopped]).update(
            status=ReceiptStatus.FAILED, claimed_until=None, last_error="webhook disabled or unset"
        )
        PushConfig.objects.filter(app_id__in=gone_apps, webhook_disabled_at__isnull=True).update(
            webhook_disabled_at=now,
            webhook_disabled_reason="The webhook answered 410 Gone: receipts are off until "
            "the webhook URL is changed.",
        )
    return counts


def _after(receipt: Receipt, result: WebhookResult, now: datetime) -> dict[str, Any]:
    outcome = result.outcome
    common = {
        "claimed_until": None,
        "last_status_code": result.status_code,
        "last_error": (outcome.error or "")[:300],
    }
    if outcome.kind is OutcomeKind.DELIVERED:
        return {
            **common,
            "_kind": "delivered",
            "status": ReceiptStatus.DELIVERED,
            "delivered_at": now,
        }
    retry_at = now + timedelta(
        seconds=backoff_seconds(
            receipt.attempts, outcome.retry_after, base=BACKOFF_BASE, cap=BACKOFF_CAP
        )
    )
    if (
        outcome.kind is OutcomeKind.RETRY
        and retry_at < receipt.created_at + RETRY_FOR
        and receipt.attempts < settings.PUSH_MAX_ATTEMPTS
    ):
        return {
            **common,
            "_kind": "retry",
            "status": ReceiptStatus.PENDING,
            "next_attempt_at": retry_at,
            "enqueued_at": None,
        }
    return {**common, "_kind": "failed", "status": ReceiptStatus.FAILED}


def receipts_sweep(*, now: datetime | None = None) -> int:
    """Take back stale receipt claims and queue due retries."""
    return outbox_sweep(
        Receipt,
        waiting=ReceiptStatus.PENDING,
        sending=ReceiptStatus.SENDING,
        now=now or timezone.now(),
        enqueue=receipts_enqueue,
        give_up=receipts_give_up,
    )


def receipts_give_up(receipt_ids: list[int]) -> None:
    """Fail claimed receipts that never got an answer in all their attempts (the sweeper)."""
    Receipt.objects.filter(id__any=receipt_ids, status=ReceiptStatus.SENDING).update(
        status=ReceiptStatus.FAILED,
        claimed_until=None,
        last_error=f"no answer recorded in {settings.PUSH_MAX_ATTEMPTS} attempts: "
        "the worker crashed or died each time",
    )


def webhook_secrets_previous(config: PushConfig) -> tuple[str, ...]:
    """Return the replaced webhook secret while it still signs beside the current one."""
    until = config.webhook_secret_previous_until
    if config.webhook_secret_previous and until is not None and timezone.now() < until:
        return (config.webhook_secret_previous,)
    return ()
