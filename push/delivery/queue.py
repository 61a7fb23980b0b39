"""Handing delivery and receipt work to the django-q2 workers, in chunks of ids.

Scheduled sends: delivery work that waits in the database until it is due.

A scheduled notification's deliveries are stored at acceptance with `next_attempt_at = send_at`
(no worker may claim them earlier), and the task that sends them is queued in the same
transaction but invisible until `send_at`. django-q2's ORM broker hands out a queued row only
once its `lock` is in the past (a worker moves `lock` forward while it runs the task, and a
task whose worker died comes back when that runs out), so a row created with `lock = send_at`
is picked up by the first worker polling after it is due: within `Q_CLUSTER["poll"]` (0.2 s)
of `send_at` on an idle cluster, with no timer held in memory, and across restarts of every
process. The claim then decides who sends (a conditional update, SKIP LOCKED), so two workers
given the same due rows send each once; should the task be lost, the sweeper queues the
deliveries again `requeue_after` after their `enqueued_at`, set to `send_at` for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.conf import settings
from django_q.brokers.orm import ORM
from django_q.tasks import async_task


class _DelayedOrm(ORM):
    """The ORM broker, writing a task that no worker takes before `visible_at`."""

    def __init__(self, visible_at: datetime) -> None:
        super().__init__()
        self.visible_at = visible_at

    def enqueue(self, task: str) -> int:
        row = self.get_connection().create(key=self.list_key, payload=task, lock=self.visible_at)
        return row.pk


def _chunks(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def deliveries_enqueue(delivery_ids: Sequence[int]) -> None:
    """Queue delivery work: one task per chunk of ids, not one per message."""
    for chunk in _chunks(delivery_ids, settings.PUSH_DELIVERY_CHUNK):
        async_task("push.tasks.deliveries_send", chunk, task_name="deliveries_send", group="push")


def receipts_enqueue(receipt_ids: Sequence[int]) -> None:
    """Queue receipt POSTs in chunks."""
    for chunk in _chunks(receipt_ids, settings.PUSH_RECEIPT_CHUNK):
        async_task("push.tasks.receipts_send", chunk, task_name="receipts_send", group="push")


def deliveries_enqueue_at(delivery_ids: Sequence[int], at: datetime) -> None:
    """Queue delivery work that no worker takes before `at`: one task per chunk of ids."""
    broker = _DelayedOrm(at)
    for chunk in _chunks(delivery_ids, settings.PUSH_DELIVERY_CHUNK):
        async_task(
            "push.tasks.deliveries_send",
            chunk,
            task_name="deliveries_send",
            group="push",
            broker=broker,
        )
