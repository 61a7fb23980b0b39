"""The outbox deliveries and receipts share: conditional claims, leases, the sweep, isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone

from push.delivery.outbox import (
    outbox_claim,
    outbox_isolate,
    outbox_lease,
    outbox_renew,
    outbox_sweep,
)
from push.models import Delivery, DeliveryStatus
from push.services.notifications import NotificationDraft, notifications_send
from tests.factories import enroll, fcm_token, make_push_app, make_user, register

pytestmark = pytest.mark.django_db

QUEUED, SENDING = DeliveryStatus.QUEUED, DeliveryStatus.SENDING


@pytest.fixture
def rows():
    """Five queued deliveries, due now, in id order (queued by the send that made them)."""
    app = make_push_app()
    user = make_user()
    enroll(app, user)
    for n in range(5):
        register(user, app, fcm_token(n))
    notifications_send(app=app, drafts=[NotificationDraft(user_id=user.pk, title="t", body="b")])
    return list(Delivery.objects.order_by("id").values_list("id", flat=True))


def claim(ids, now, **options):
    return outbox_claim(Delivery, ids, waiting=QUEUED, sending=SENDING, now=now, **options)


def sweep(now, **options):
    enqueued, given_up = [], []
    count = outbox_sweep(
        Delivery,
        waiting=QUEUED,
        sending=SENDING,
        now=now,
        enqueue=enqueued.extend,
        give_up=given_up.extend,
        **options,
    )
    return count, enqueued, given_up


def test_a_claim_takes_its_due_rows_once_under_a_lease(rows):
    now = timezone.now()

    assert claim(rows[:2], now) == rows[:2]
    assert claim(rows[:2], now) == []  # a task run twice does its work once
    claimed = Delivery.objects.filter(id__in=rows[:2])
    assert {(d.status, d.attempts, d.claimed_until) for d in claimed} == {
        (SENDING, 1, outbox_lease(now))
    }


def test_a_row_not_yet_due_is_not_claimed(rows):
    now = timezone.now()
    Delivery.objects.filter(id=rows[0]).update(next_attempt_at=now + timedelta(minutes=5))

    assert claim(rows[:2], now) == rows[1:2]


def test_fill_to_tops_a_claim_up_with_the_oldest_due_rows(rows):
    now = timezone.now()
    Delivery.objects.filter(id=rows[4]).update(next_attempt_at=now - timedelta(hours=1))

    claimed = claim(rows[:1], now, fill_to=3)

    assert claimed[0] == rows[0] and len(claimed) == 3
    assert rows[4] in claimed  # the oldest due row first


def test_sweep_takes_back_expired_leases_and_queues_those_rows_again(rows):
    now = timezone.now()
    claim(rows[:2], now)
    later = outbox_lease(now) + timedelta(seconds=1)
    Delivery.objects.filter(id__in=rows[2:]).update(enqueued_at=later - timedelta(seconds=1))

    count, enqueued, given_up = sweep(later)

    # The other three were queued by a send a moment ago: not queued twice.
    assert count == 2 and sorted(enqueued) == rows[:2] and given_up == []
    assert set(Delivery.objects.values_list("status", flat=True)) == {QUEUED}


def test_sweep_does_not_queue_a_row_queued_recently(rows):
    now = timezone.now()
    Delivery.objects.update(enqueued_at=None)  # their task was lost
    Delivery.objects.filter(id=rows[0]).update(enqueued_at=now - timedelta(seconds=10))

    count, enqueued, _ = sweep(now, requeue_after=300)

    assert count == 4 and rows[0] not in enqueued


def test_stalled_work_is_queued_again_once_no_worker_holds_a_claim(rows, settings):
    # Queued more than a lease ago and never claimed: its task sits in a dead cluster's hands.
    now = timezone.now()
    stalled = now - timedelta(seconds=settings.PUSH_CLAIM_SECONDS + 1)
    Delivery.objects.update(enqueued_at=stalled)
    claim(rows[:1], now)  # a live worker holds a claim: the queue is moving, leave it be

    assert sweep(now, requeue_after=300)[0] == 0

    Delivery.objects.filter(id=rows[0]).update(status=QUEUED, claimed_until=None)
    count, enqueued, _ = sweep(now, requeue_after=300)

    assert count == 5 and sorted(enqueued) == rows


def test_a_renewed_lease_is_not_taken_back(rows, settings):
    now = timezone.now()
    claim(rows[:2], now)
    later = now + timedelta(seconds=settings.PUSH_CLAIM_SECONDS - 1)

    assert outbox_renew(Delivery, rows[:3], sending=SENDING, now=later) == 2  # held ones only
    count, enqueued, _ = sweep(outbox_lease(now) + timedelta(seconds=1))

    assert rows[0] not in enqueued and rows[1] not in enqueued
    claimed = Delivery.objects.filter(id__in=rows[:2])
    assert {(d.status, d.claimed_until) for d in claimed} == {(SENDING, outbox_lease(later))}


def test_sweep_gives_up_a_row_whose_claims_keep_expiring(rows, settings):
    now = timezone.now()
    Delivery.objects.filter(id=rows[0]).update(
        status=SENDING, attempts=settings.PUSH_MAX_ATTEMPTS, claimed_until=now - timedelta(1)
    )

    _, enqueued, given_up = sweep(now)

    assert given_up == [rows[0]] and rows[0] not in enqueued


def test_isolate_retries_each_row_alone_so_only_the_poison_one_fails():
    def work(items):
        if 3 in items:
            raise ValueError("poison")
        return {item: item * 10 for item in items}

    loaded, failures = outbox_isolate(work, [1, 2, 3, 4])

    assert loaded == {1: 10, 2: 20, 4: 40}
    assert list(failures) == [3] and isinstance(failures[3], ValueError)


def test_isolate_raises_database_errors_instead_of_blaming_a_row():
    def work(items):
        raise DatabaseError("connection lost")

    with pytest.raises(DatabaseError):
        outbox_isolate(work, [1, 2])
