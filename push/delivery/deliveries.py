"""Delivering claimed deliveries: load, send through the transports, record each outcome.

A chunk is claimed with a conditional update (QUEUED and due → SENDING with a lease), so a task
that runs twice, or two workers given the same ids, send each delivery once. A worker killed
mid-chunk leaves its claims to expire; the sweeper puts them back in the queue.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from keymaster import metrics
from keymaster.outage import through_db_outage
from push.delivery.backoff import backoff_seconds
from push.delivery.outbox import outbox_claim, outbox_isolate, outbox_sweep
from push.delivery.queue import deliveries_enqueue
from push.delivery.receipts import receipts_create, receipts_post
from push.delivery.runtime import runtime
from push.models import (
    Delivery,
    DeliveryStatus,
    Device,
    Notification,
    NotificationStatus,
    PushConfig,
    Receipt,
    Transport,
)
from push.open_tokens import with_open_token
from push.transports.base import Outcome, OutcomeKind, PushMessage, outcome_for_bug
from push.transports.fcm import FcmCredential, credential_for, outcome_not_configured
from push.transports.service_account import credential_refused_outcome
from push.transports.webpush import VapidKey

logger = logging.getLogger(__name__)

BACKOFF_BASE = 5.0
BACKOFF_CAP = 3600.0


# What sending, recording and the receipt read of a delivery and its notification: building a
# model's every field (five timestamps parsed per delivery) was a third of the loading.
# Reading a field not named here would cost a query per delivery
# (tests/push/delivery/test_deliveries.py counts a chunk's statements).
_LOADED = (
    "app_id",
    "device_id",
    "device_ref",
    "status",
    "attempts",
    "error",
    *(
        f"notification__{name}"
        for name in (
            "user_id",
            "title",
            "body",
            "data",
            "ttl",
            "priority",
            "collapse_key",
            "urgency",
            "created_at",
            "send_at",  # TTL counts from it (Notification.expires_at)
            "broadcast",  # its id goes in the receipt
        )
    ),
)


@dataclass
class _Job:
    delivery: Delivery
    transport: str
    target: Any  # the FCM token, or the Web Push subscription (a dict)
    message: PushMessage


def deliveries_claim(
    delivery_ids: list[int], *, now: datetime | None = None, fill_to: int = 0
) -> list[int]:
    """Claim the queued, due deliveries among `delivery_ids`, topped up to `fill_to`."""
    now = now or timezone.now()
    return outbox_claim(
        Delivery,
        delivery_ids,
        waiting=DeliveryStatus.QUEUED,
        sending=DeliveryStatus.SENDING,
        now=now,
        fill_to=fill_to,
        updated_at=now,
    )


def deliveries_send(delivery_ids: list[int]) -> dict[str, int]:
    """Claim (topped up with other due ones), send and record a chunk; return counts."""
    claimed = deliveries_claim(delivery_ids, fill_to=settings.PUSH_DELIVERY_CHUNK)
    if not claimed:
        return {}
    deliveries = list(
        Delivery.objects.filter(id__any=claimed).select_related("notification").only(*_LOADED)
    )
    # Apart from the deliveries: a device whose token cannot be read must fail alone.
    devices = {d.device_id for d in deliveries if d.device_id}
    loaded, unreadable = outbox_isolate(_devices_load, list(devices))
    jobs, early = _jobs(deliveries, loaded, unreadable)
    outcomes = dict(early)
    outcomes.update(_send(jobs))
    metrics.deliveries_answered(deliveries, outcomes, {j.delivery.id: j.transport for j in jobs})
    # Sent is sent: if the database went away meanwhile, wait for it rather than send again.
    counts, receipts = through_db_outage(deliveries_record)(deliveries, outcomes, claim=True)
    # Committed: their receipts go out now, from this task (claimed for it when created).
    receipts_post(receipts)
    return counts


def _devices_load(device_ids: list[Any]) -> dict[Any, Device]:
    devices = Device.objects.filter(id__any=device_ids).only("id", "transport", "token")
    return {device.id: device for device in devices}


def _message(notification: Notification) -> PushMessage:
    return PushMessage(
        notification_id=str(notification.id),
        title=notification.title,
        body=notification.body,
        data=notification.data,
        ttl=notification.ttl_left(),
        priority=notification.priority,
        collapse_key=notification.collapse_key or None,
        urgency=notification.urgency or None,
    )


def _jobs(
    deliveries: list[Delivery], devices: dict[Any, Device], unreadable: dict[Any, Exception]
) -> tuple[list[_Job], dict[int, Outcome]]:
    jobs, early = [], {}
    now = timezone.now()
    for delivery in deliveries:
        notification = delivery.notification
        device = devices.get(delivery.device_id)
        if delivery.device_id in unreadable:
            early[delivery.id] = outcome_for_bug(unreadable[delivery.device_id])
        elif device is None:
            early[delivery.id] = Outcome(OutcomeKind.FAILED, "device_removed", "device was removed")
        elif notification.ttl and notification.expires_at <= now:
            early[delivery.id] = Outcome(OutcomeKind.FAILED, "expired", "TTL ran out")
        else:
            try:
                jobs.append(_job(delivery, device))
            except Exception as exc:  # a corrupt row: this delivery fails, not its chunk
                ids = {"app_id": delivery.app_id, "notification_id": delivery.notification_id}
                logger.error(
                    "delivery %s: cannot build its message: %s",
                    delivery.id,
                    exc,
                    extra={**ids, "delivery_id": delivery.id},
                )
                early[delivery.id] = outcome_for_bug(exc)
    return jobs, early


def _job(delivery: Delivery, device: Device) -> _Job:
    target = json.loads(device.token) if device.transport == Transport.WEBPUSH else device.token
    return _Job(delivery, device.transport, target, _message(delivery.notification))


def _send(jobs: list[_Job]) -> dict[int, Outcome]:
    by_app: dict[Any, list[_Job]] = defaultdict(list)
    for job in jobs:
        by_app[job.delivery.app_id].append(job)
    configs, unreadable = outbox_isolate(_configs_load, list(by_app))
    rt = runtime()

    async def send_all() -> dict[int, Outcome]:
        groups = [_send_group(app_id, group) for app_id, group in by_app.items()]
        results: dict[int, Outcome] = {}
        for part in await asyncio.gather(*groups):
            results.update(part)
        return results

    async def _send_group(app_id: Any, group: list[_Job]) -> dict[int, Outcome]:
        try:
            return await _send_app(configs[app_id], group)
        except Exception as exc:  # the app's config cannot be used: its deliveries fail alone
            logger.error(
                "app %s: cannot send with its push config: %s",
                app_id,
                exc,
                extra={"app_id": app_id},
            )
            broken = outcome_for_bug(unreadable.get(app_id, exc))
            return {job.delivery.id: broken for job in group}

    async def _send_app(config: PushConfig, group: list[_Job]) -> dict[int, Outcome]:
        results: dict[int, Outcome] = {}
        fcm = [job for job in group if job.transport == Transport.FCM]
        web = [job for job in group if job.transport == Transport.WEBPUSH]
        if fcm:
            try:
                credential = _fcm_credential(config)
            except ValueError as exc:  # a broken key fails this app's FCM deliveries alone
                credential, unusable = None, credential_refused_outcome(exc)
            else:
                unusable = outcome_not_configured()
            if credential is None:
                results.update({job.delivery.id: unusable for job in fcm})
            else:
                sent = await rt.fcm.send_many(credential, [(j.target, j.message) for j in fcm])
                results.update({job.delivery.id: o for job, o in zip(fcm, sent, strict=True)})
        if web:
            vapid = VapidKey(config.vapid_private_key, settings.PUSH_VAPID_SUBJECT)
            opens = config.track_opens  # push.open_tokens: the payload's per-delivery token
            messages = [(j.target, with_open_token(j.message, j.delivery.id, opens)) for j in web]
            sent = await rt.webpush.send_many(vapid, messages)
            results.update({job.delivery.id: o for job, o in zip(web, sent, strict=True)})
        return results

    return rt.run(send_all()) if jobs else {}


def _configs_load(app_ids: list[Any]) -> dict[Any, PushConfig]:
    # Sending needs no webhook secret: a receipt problem must not stop deliveries.
    configs = PushConfig.objects.filter(app_id__in=app_ids).defer("webhook_secret")
    return {config.app_id: config for config in configs}


def _fcm_credential(config: PushConfig) -> FcmCredential | None:
    if config.fcm_service_account:
        info = json.loads(config.fcm_service_account)
        return credential_for(f"app:{config.app_id}:{info.get('private_key_id', '')}", info)
    return _default_fcm_credential()


def _default_fcm_credential() -> FcmCredential | None:
    path = settings.FCM_CREDENTIALS_FILE
    if not path:
        return None
    # Keyed by modification time: a replaced key file is read again, an unchanged one never.
    return _file_credential(path, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _file_credential(path: str, mtime_ns: int) -> FcmCredential:
    with open(path, encoding="utf-8") as handle:
        info = json.load(handle)
    return credential_for(f"file:{path}:{mtime_ns}", info)


def deliveries_record(
    deliveries: list[Delivery], outcomes: dict[int, Outcome], *, claim: bool = False
) -> tuple[dict[str, int], list[Receipt]]:
    """Record each claimed delivery's outcome, remove dead devices, store receipts, roll up.

    Returns the counts by outcome and the receipts: queued, or with `claim` leased to the
    caller to POST once this has committed (`receipts_create`).
    """
    now = timezone.now()
    final: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    retries: list[Delivery] = []
    dead_devices: set[Any] = set()
    config_errors: dict[Any, str] = {}
    finished: list[Delivery] = []
    for delivery in deliveries:
        outcome = outcomes.get(delivery.id) or Outcome(OutcomeKind.RETRY, "lost", "no outcome")
        status, error = _final_status(delivery, outcome, now)
        if status is None:
            delivery.next_attempt_at = now + timedelta(
                seconds=backoff_seconds(
                    delivery.attempts, outcome.retry_after, base=BACKOFF_BASE, cap=BACKOFF_CAP
                )
            )
            delivery.error, delivery.error_detail = error, outcome.detail[:300]
            retries.append(delivery)
            continue
        final[(status, error, outcome.detail[:300])].append(delivery.id)
        delivery.status, delivery.error = status, error
        finished.append(delivery)
        if status == DeliveryStatus.INVALID_TOKEN and delivery.device_id:
            dead_devices.add(delivery.device_id)
        if outcome.misconfigured and outcome.kind is not OutcomeKind.RETRY:
            config_errors[delivery.app_id] = f"{error}: {outcome.detail}"
    with transaction.atomic():
        # Only the claims still ours: one the sweeper took back is another worker's now.
        owned = set(
            Delivery.objects.select_for_update()
            .filter(id__any=[d.id for d in deliveries], status=DeliveryStatus.SENDING)
            .values_list("id", flat=True)
        )
        for (status, error, detail), ids in final.items():
            Delivery.objects.filter(id__any=ids, status=DeliveryStatus.SENDING).update(
                status=status, error=error, error_detail=detail, claimed_until=None, updated_at=now
            )
        for delivery in retries:
            Delivery.objects.filter(id=delivery.id, status=DeliveryStatus.SENDING).update(
                status=DeliveryStatus.QUEUED,
                next_attempt_at=delivery.next_attempt_at,
                enqueued_at=None,
                claimed_until=None,
                error=delivery.error,
                error_detail=delivery.error_detail,
                updated_at=now,
            )
        if dead_devices:
            # As the guide says: an invalid token removes the device registration.
            Device.objects.filter(id__in=dead_devices).delete()
        for app_id, error in config_errors.items():
            push_config_record_error(app_id=app_id, error=error)
        receipts = receipts_create([d for d in finished if d.id in owned], claim=claim)
        notifications_roll_up({d.notification_id for d in deliveries})
    counts: dict[str, int] = defaultdict(int)
    for (status, _, _), ids in final.items():
        counts[status] += len(ids)
    counts["retry"] = len(retries)
    logger.info("delivery chunk done: %s", dict(counts))
    return dict(counts), receipts


def push_config_record_error(*, app_id: Any, error: str) -> None:
    """Show a delivery error that means a misconfigured app (not a dead token) on its config."""
    PushConfig.objects.filter(app_id=app_id).update(
        last_error=error[:300], last_error_at=timezone.now()
    )


def _final_status(delivery: Delivery, outcome: Outcome, now: datetime) -> tuple[str | None, str]:
    if outcome.kind is OutcomeKind.DELIVERED:
        return DeliveryStatus.DELIVERED, ""
    if outcome.kind is OutcomeKind.INVALID_TOKEN:
        return DeliveryStatus.INVALID_TOKEN, outcome.error or "invalid_token"
    if outcome.kind is OutcomeKind.FAILED:
        return DeliveryStatus.FAILED, outcome.error or "failed"
    next_try = now + timedelta(seconds=outcome.retry_after or 0)
    if delivery.notification.ttl == 0 or next_try >= delivery.notification.expires_at:
        return DeliveryStatus.FAILED, "expired"
    if delivery.attempts >= settings.PUSH_MAX_ATTEMPTS:
        return DeliveryStatus.FAILED, "too_many_attempts"
    return None, outcome.error or "retry"


def notifications_roll_up(notification_ids: set[Any]) -> None:
    """Mark notifications whose deliveries have all ended as delivered or failed.

    Called in the transaction that recorded the deliveries. Two tasks ending the last two
    deliveries of one notification at the same time would each see the other's still sending
    (neither has committed yet) and both leave the notification queued for good. So each
    notification that still looks open is locked (in id order: no deadlock) and looked at
    again: whichever task locks it second waits for the first to commit, then sees its
    delivery ended.
    """
    done = notification_ids - _open_notifications(notification_ids)
    if looks_open := notification_ids - done:
        locked = set(
            Notification.objects.select_for_update()
            .filter(id__any=looks_open, status=NotificationStatus.QUEUED)
            .order_by("id")
            .values_list("id", flat=True)
        )
        if locked:
            done |= locked - _open_notifications(locked)
    if not done:
        return
    reached = set(
        Delivery.objects.filter(
            notification_id__any=done, status=DeliveryStatus.DELIVERED
        ).values_list("notification_id", flat=True)
    )
    now = timezone.now()
    open_ = Notification.objects.filter(status=NotificationStatus.QUEUED)
    open_.filter(id__any=reached).update(status=NotificationStatus.DELIVERED, completed_at=now)
    open_.filter(id__any=done - reached).update(status=NotificationStatus.FAILED, completed_at=now)


def _open_notifications(notification_ids: set[Any]) -> set[Any]:
    """Those of `notification_ids` with a delivery still queued or sending."""
    return set(
        Delivery.objects.filter(
            notification_id__any=notification_ids,
            status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING],
        ).values_list("notification_id", flat=True)
    )


def deliveries_sweep(*, now: datetime | None = None) -> int:
    """Take back stale claims and queue due retries; return how many were queued."""
    queued = outbox_sweep(
        Delivery,
        waiting=DeliveryStatus.QUEUED,
        sending=DeliveryStatus.SENDING,
        now=now or timezone.now(),
        enqueue=deliveries_enqueue,
        give_up=deliveries_give_up,
    )
    if queued:
        logger.info("sweep queued %d due deliveries", queued)
    return queued


def deliveries_give_up(delivery_ids: list[int]) -> None:
    """Fail claimed deliveries that never got an outcome in all their attempts (the sweeper)."""
    deliveries = list(
        Delivery.objects.filter(id__in=delivery_ids, status=DeliveryStatus.SENDING).select_related(
            "notification"
        )
    )
    detail = (
        f"no outcome in {settings.PUSH_MAX_ATTEMPTS} attempts: "
        "the worker crashed or died each time (see the worker log)"
    )
    spent = Outcome(OutcomeKind.FAILED, "too_many_attempts", detail)
    deliveries_record(deliveries, {delivery.id: spent for delivery in deliveries})
