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
import queue
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from keymaster import metrics
from keymaster.outage import through_db_outage
from push.delivery.backoff import backoff_seconds
from push.delivery.outbox import outbox_claim, outbox_isolate, outbox_renew, outbox_sweep
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
    ReceiptStatus,
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
    """Claim (topped up with other due ones), send and record a chunk; return counts.

    Outcomes are recorded as they arrive, a few at a time (`_Recorder`), while the claims not
    yet recorded have their lease renewed: a worker killed mid-chunk sends again only what was
    in flight or awaiting its record (at most PUSH_RECORD_WINDOW), and its claims run out
    within one lease instead of after the whole chunk's worth.
    """
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
    rt = runtime()
    window = _Window(rt.loop, settings.PUSH_RECORD_WINDOW)
    recorder = _Recorder(deliveries, window, {j.delivery.id: j.transport for j in jobs})
    for delivery_id, outcome in early.items():
        recorder.arrived(delivery_id, outcome)
    recorder.follow(_send(jobs, recorder))
    # Committed: their receipts go out now, from this task (claimed for it when created).
    receipts_post(recorder.receipts)
    return dict(recorder.counts)


class _Window:
    """At most `size` sends of a task in flight or answered but not yet recorded.

    Lives on the runtime's loop: a send waits for a free place (`admit`), and keeps it until
    the recording thread has committed its outcome (`release`).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._free = asyncio.Semaphore(size)
        self._held: set[int] = set()

    async def admit(self, delivery_id: int) -> None:
        await self._free.acquire()
        self._held.add(delivery_id)

    def release(self, delivery_ids: list[int]) -> None:
        """Free the places of recorded sends (from any thread)."""

        def free() -> None:
            for delivery_id in delivery_ids:
                if delivery_id in self._held:
                    self._held.discard(delivery_id)
                    self._free.release()

        self._loop.call_soon_threadsafe(free)


class _Recorder:
    """Records a chunk's outcomes as they arrive, and keeps its unrecorded claims leased.

    Outcomes arrive from the loop thread (`arrived`); this thread records them in groups: as
    soon as PUSH_RECORD_EVERY are waiting, or PUSH_RECORD_MS after the first of them arrived,
    so a group costs one `deliveries_record` (its statements do not grow with its size) and a
    crash repeats only the messages awaiting their record. Every third of a lease it renews
    the leases of the claims not yet recorded (and of the receipts it holds).
    """

    def __init__(
        self, deliveries: list[Delivery], window: _Window, providers: dict[int, str]
    ) -> None:
        self.window = window
        self._providers = providers  # by delivery id: where it was sent (metrics)
        self.receipts: list[Receipt] = []
        self.counts: dict[str, int] = defaultdict(int)
        self._deliveries = {d.id: d for d in deliveries}
        self._open = set(self._deliveries)
        self._inbox: queue.SimpleQueue[tuple[int, Outcome] | None] = queue.SimpleQueue()
        self._waiting: dict[int, Outcome] = {}
        self._first = 0.0

    def arrived(self, delivery_id: int, outcome: Outcome) -> None:
        """Hand over one outcome (from any thread)."""
        self._inbox.put((delivery_id, outcome))

    def follow(self, sending: Future[dict[int, Outcome]]) -> None:
        """Record the outcomes until `sending` is done, then the rest; raise what it raised."""
        every, wait = settings.PUSH_RECORD_EVERY, settings.PUSH_RECORD_MS / 1000
        beat = settings.PUSH_CLAIM_SECONDS / 3
        renew_at = time.monotonic() + beat
        sending.add_done_callback(lambda _: self._inbox.put(None))  # wake up at the end
        try:
            while not sending.done():
                due = min(renew_at, self._first + wait if self._waiting else renew_at)
                self._take(max(0.0, due - time.monotonic()))
                now = time.monotonic()
                if len(self._waiting) >= every or (self._waiting and now >= self._first + wait):
                    self._record()
                if now >= renew_at:
                    self._renew()
                    renew_at = now + beat
            results = sending.result()
        except BaseException:
            sending.cancel()
            raise
        self._take(0.0)
        for delivery_id, outcome in results.items():  # e.g. an app whose config broke
            if delivery_id in self._open:
                self._waiting.setdefault(delivery_id, outcome)
        # Any claim still without an outcome is recorded as a retry ("lost").
        self._waiting.update({i: _LOST for i in self._open if i not in self._waiting})
        if self._waiting:
            self._record()

    def _take(self, timeout: float) -> None:
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
            while True:
                if item is not None and item[0] in self._open:
                    if not self._waiting:
                        self._first = time.monotonic()
                    self._waiting[item[0]] = item[1]
                item = self._inbox.get_nowait()
        except queue.Empty:
            pass

    def _record(self) -> None:
        ids = list(self._waiting)
        group = [self._deliveries[i] for i in ids]
        # A notification with a delivery this task has still to record cannot have ended: its
        # roll-up (three statements) waits for the group that records its last one here.
        unfinished = frozenset(
            self._deliveries[i].notification_id for i in self._open if i not in self._waiting
        )
        # Sent is sent: if the database went away meanwhile, wait for it rather than send again.
        record = through_db_outage(deliveries_record)
        counts, receipts = record(group, self._waiting, claim=True, unfinished=unfinished)
        metrics.deliveries_answered(group, self._waiting, self._providers)
        for name, count in counts.items():
            self.counts[name] += count
        self.receipts += receipts
        self._open.difference_update(ids)
        self._waiting = {}
        self.window.release(ids)

    def _renew(self) -> None:
        now = timezone.now()
        outbox_renew(Delivery, list(self._open), sending=DeliveryStatus.SENDING, now=now)
        if self.receipts:
            held = [r.id for r in self.receipts]
            outbox_renew(Receipt, held, sending=ReceiptStatus.SENDING, now=now)


_LOST = Outcome(OutcomeKind.RETRY, "lost", "no outcome")


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


def _send(jobs: list[_Job], recorder: _Recorder) -> Future[dict[int, Outcome]]:
    """Start sending `jobs` on the runtime's loop; each outcome goes to `recorder` as it comes.

    The future's result has every job's outcome, those of an app whose config could not be
    used included (they fail without being sent, so they never pass `recorder.arrived`).
    """
    done: Future[dict[int, Outcome]] = Future()
    if not jobs:
        done.set_result({})
        return done
    by_app: dict[Any, list[_Job]] = defaultdict(list)
    for job in jobs:
        by_app[job.delivery.app_id].append(job)
    configs, unreadable = outbox_isolate(_configs_load, list(by_app))
    rt = runtime()
    window = recorder.window

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

    def followed(part: list[_Job]) -> dict[str, Any]:
        # Each outcome to the recorder as it arrives; each send within the window.
        return {
            "each": lambda i, outcome: recorder.arrived(part[i].delivery.id, outcome),
            "admit": lambda i: window.admit(part[i].delivery.id),
        }

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
                items = [(j.target, j.message) for j in fcm]
                sent = await rt.fcm.send_many(credential, items, **followed(fcm))
                results.update({job.delivery.id: o for job, o in zip(fcm, sent, strict=True)})
        if web:
            vapid = VapidKey(config.vapid_private_key, settings.PUSH_VAPID_SUBJECT)
            opens = config.track_opens  # push.open_tokens: the payload's per-delivery token
            items = [(j.target, with_open_token(j.message, j.delivery.id, opens)) for j in web]
            sent = await rt.webpush.send_many(vapid, items, **followed(web))
            results.update({job.delivery.id: o for job, o in zip(web, sent, strict=True)})
        return results

    return asyncio.run_coroutine_threadsafe(send_all(), rt.loop)


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
    deliveries: list[Delivery],
    outcomes: dict[int, Outcome],
    *,
    claim: bool = False,
    unfinished: frozenset[Any] = frozenset(),
) -> tuple[dict[str, int], list[Receipt]]:
    """Record each claimed delivery's outcome, remove dead devices, store receipts, roll up.

    Returns the counts by outcome and the receipts: queued, or with `claim` leased to the
    caller to POST once this has committed (`receipts_create`). Notifications in `unfinished`
    are not rolled up: the caller still holds one of their deliveries unrecorded.
    """
    now = timezone.now()
    final: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    retries: list[Delivery] = []
    dead_devices: set[Any] = set()
    config_errors: dict[Any, str] = {}
    finished: list[Delivery] = []
    for delivery in deliveries:
        outcome = outcomes.get(delivery.id) or _LOST
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
        notifications_roll_up({d.notification_id for d in deliveries} - unfinished)
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
