"""Handing delivery and receipt work to the django-q2 workers, in chunks of ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.conf import settings
from django_q.tasks import async_task


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
