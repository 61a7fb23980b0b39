"""The claim-and-sweep mechanism deliveries and receipts share.

Rows wait in a `waiting` status until `next_attempt_at`; a worker claims a chunk by moving it to
`sending` with a lease (`claimed_until`); the sweeper queues due rows again and takes back the
leases of workers that died. Claims are conditional, so a task run twice does its work once.

A row that keeps failing must not hold up the others: work on a chunk that raises is done again
row by row (`outbox_isolate`), so only the poison row fails; and a row whose claims keep
expiring without an outcome (it crashes or kills its worker every time) is given up by the
sweeper after PUSH_MAX_ATTEMPTS claims instead of being queued again forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, models, transaction
from django.db.models import F

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


def outbox_lease(now: datetime) -> datetime:
    """When a claim made `now` runs out, and the sweeper may take the row back."""
    return now + timedelta(seconds=settings.PUSH_CLAIM_SECONDS)


def outbox_renew(
    model: type[models.Model], ids: Sequence[int], *, sending: str, now: datetime
) -> int:
    """Renew the leases of the claims among `ids` still held (a heartbeat); return how many.

    A worker calls it while it works on its claims, so a lease runs out only when its worker
    died (or hangs), and leases can be short: the sweeper takes a dead worker's claims back
    within one lease.
    """
    if not ids:
        return 0
    return model.objects.filter(id__any=list(ids), status=sending).update(
        claimed_until=outbox_lease(now)
    )


def outbox_claim(
    model: type[models.Model],
    ids: Sequence[int],
    *,
    waiting: str,
    sending: str,
    now: datetime,
    fill_to: int = 0,
    **also: Any,
) -> list[int]:
    """Move the waiting, due rows among `ids` to `sending` under a lease; return their ids.

    With `fill_to`, a claim of fewer rows is topped up with other due rows, oldest first, up
    to that many: under load, tasks queued behind this one find their rows already taken and
    end at once, so many small sends cost a few full chunks instead of a task each.
    """
    with transaction.atomic():
        locked = model.objects.select_for_update(skip_locked=True)
        # By primary key alone, the rest checked here: with "status = waiting" in the SQL the
        # planner may read the `{name}_due` index whole instead of looking up `ids`.
        rows = locked.filter(id__any=ids).values_list("id", "status", "next_attempt_at")
        claimed = [pk for pk, status, due in rows if status == waiting and due <= now]
        if len(claimed) < fill_to:
            # The `{name}_due` index in next_attempt_at order: the oldest due rows first.
            more = locked.filter(status=waiting, next_attempt_at__lte=now).exclude(id__any=claimed)
            more = more.order_by("next_attempt_at").values_list("id", flat=True)
            claimed += list(more[: fill_to - len(claimed)])
        model.objects.filter(id__any=claimed).update(
            status=sending,
            claimed_until=outbox_lease(now),
            attempts=F("attempts") + 1,
            **also,
        )
    return claimed


def outbox_sweep(
    model: type[models.Model],
    *,
    waiting: str,
    sending: str,
    now: datetime,
    enqueue: Callable[[list[int]], None],
    give_up: Callable[[list[int]], None],
    requeue_after: int = 300,
    limit: int = 10_000,
) -> int:
    """Take back expired leases and queue due rows not queued recently; return how many.

    Rows whose lease expired on their last allowed attempt go to `give_up` (still `sending`).

    A row queued recently is normally left alone: its task is in the broker. But the task may
    sit in a dead cluster's hands (django-q2 hands it out again only after Q_RETRY): so when no
    worker holds a live claim, work queued more than a lease ago is stalled and queued again
    at once. A duplicate task is harmless: claims are conditional, and a task whose rows are
    taken tops itself up with other due rows.
    """
    with transaction.atomic():
        expired = model.objects.filter(status=sending, claimed_until__lt=now)
        spent = list(
            expired.filter(attempts__gte=settings.PUSH_MAX_ATTEMPTS).values_list("id", flat=True)
        )
        if spent:
            logger.warning("giving up %d %s rows claimed too often", len(spent), model.__name__)
            give_up(spent)
        expired.exclude(id__in=spent).update(status=waiting, claimed_until=None, enqueued_at=None)
        # claimed_until is set exactly while a row is claimed (the `{name}_claimed` index).
        working = model.objects.filter(claimed_until__gte=now).exists()
        if not working:
            requeue_after = min(requeue_after, settings.PUSH_CLAIM_SECONDS)
        due = list(
            model.objects.select_for_update(skip_locked=True)
            .filter(status=waiting, next_attempt_at__lte=now)
            .exclude(enqueued_at__gt=now - timedelta(seconds=requeue_after))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        model.objects.filter(id__in=due).update(enqueued_at=now)
        enqueue(due)
    return len(due)


def outbox_isolate(
    work: Callable[[list[K]], dict[K, R]], items: Sequence[K]
) -> tuple[dict[K, R], dict[K, Exception]]:
    """Load `items` with `work` all at once; if it raises, each alone. Return loaded, failures.

    Database errors are not a row's fault and are raised: the claims then run out and the
    sweeper queues the rows again.
    """
    if len(items) > 1:
        try:
            return work(list(items)), {}
        except DatabaseError:
            raise
        except Exception:
            logger.exception("%d rows at once raised: trying each alone", len(items))
    results: dict[K, R] = {}
    failures: dict[K, Exception] = {}
    for item in items:
        try:
            results.update(work([item]))
        except DatabaseError:
            raise
        except Exception as exc:
            logger.error("%s failed: %s: %s", item, type(exc).__name__, exc)
            failures[item] = exc
    return results, failures
