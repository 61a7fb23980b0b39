"""`objects_insert` stores exactly what `bulk_create` stores, by COPY or by INSERT."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from keymaster.bulk import COPY_FROM, objects_insert
from push.models import Delivery, DeliveryStatus, Device, Notification
from tests.factories import enroll, fcm_device, make_push_app, make_user

pytestmark = pytest.mark.django_db

ROWS = COPY_FROM + 5  # enough for COPY on PostgreSQL


NOW = timezone.now()


@pytest.fixture
def bulk_creates(monkeypatch):
    """The `bulk_create` calls made from here on (objects_insert's own SQL makes none)."""
    calls: list[int] = []
    real = QuerySet.bulk_create

    def bulk_create(queryset, objs, *args, **kwargs):
        calls.append(len(objs))
        return real(queryset, objs, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "bulk_create", bulk_create)
    return calls


def _notifications(app, user, tag: str) -> list[Notification]:
    return [
        Notification(
            app=app,
            user_id=user.id,
            title=f"{tag} {n} ünïcödé \t tab",
            body="line\nbreak \\ backslash",
            data={"n": str(n), "quote": '"', "nested": "{}"},
            collapse_key="" if n % 2 else "k",
            created_at=NOW,
        )
        for n in range(ROWS)
    ]


def _stored(ids: list) -> list[tuple]:
    fields = ["title", "body", "data", "collapse_key", "status", "priority", "ttl", "created_at"]
    rows = Notification.objects.filter(id__in=ids).values_list(*fields)
    return sorted(rows, key=lambda row: row[0])


@pytest.mark.parametrize("count", [1, ROWS])
def test_rows_match_what_bulk_create_stores(count, monkeypatch, bulk_creates):
    app, user = make_push_app(), make_user()
    copied = _notifications(app, user, "a")[:count]
    created = _notifications(app, user, "b")[:count]
    copies = []
    real_copy = psycopg.Cursor.copy

    def copy(cursor, statement, *args, **kwargs):
        copies.append(statement)
        return real_copy(cursor, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", copy)
    objects_insert(copied)
    # COPY from COPY_FROM rows on, and only on PostgreSQL; one INSERT otherwise.
    on_postgres = connection.vendor == "postgresql"
    assert len(copies) == (1 if on_postgres and count >= COPY_FROM else 0)
    assert bulk_creates == ([] if on_postgres else [count])
    Notification.objects.bulk_create(created)
    mine = [(row[0][2:], *row[1:]) for row in _stored([n.id for n in copied])]
    theirs = [(row[0][2:], *row[1:]) for row in _stored([n.id for n in created])]
    assert mine == theirs and len(mine) == count
    assert all(not n._state.adding for n in copied)


@pytest.mark.parametrize("count", [1, 3, ROWS])  # one INSERT ... RETURNING, or COPY
def test_auto_primary_keys_are_set_and_the_sequence_moves_on(count, bulk_creates):
    app, user = make_push_app(), make_user()
    enroll(app, user)
    notification = _notifications(app, user, "n")[0]
    notification.save()
    deliveries = [
        Delivery(notification=notification, app=app, platform="web", device_ref=uuid.uuid4())
        for _ in range(count)
    ]
    objects_insert(deliveries)
    assert bulk_creates == ([] if connection.vendor == "postgresql" else [count])
    ids = [d.id for d in deliveries]
    assert None not in ids and len(set(ids)) == count
    stored = dict(Delivery.objects.filter(id__in=ids).values_list("id", "device_ref"))
    assert stored == {d.id: d.device_ref for d in deliveries}
    # TextChoices members are stored as their values, as the ORM stores them.
    assert set(Delivery.objects.filter(id__in=ids).values_list("status", flat=True)) == {
        DeliveryStatus.QUEUED.value
    }
    later = Delivery.objects.create(
        notification=notification, app=app, platform="web", device_ref=uuid.uuid4()
    )
    assert later.id > max(ids)


def test_encrypted_fields_are_encrypted_as_the_orm_encrypts_them():
    app, user = make_push_app(), make_user()
    tokens = [f"secret-push-token-{n}-{uuid.uuid4().hex}" for n in range(ROWS)]
    objects_insert([fcm_device(app, user, token) for token in tokens])
    assert sorted(Device.objects.filter(app=app).values_list("token", flat=True)) == sorted(tokens)
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM push_device")
        raw = repr(cursor.fetchall())
    assert not any(token in raw for token in tokens)


def test_a_few_rows_some_with_their_key_some_without():
    app, user = make_push_app(), make_user()
    notification = _notifications(app, user, "n")[0]
    notification.save()
    given = Delivery(
        id=10**9, notification=notification, app=app, platform="web", device_ref=uuid.uuid4()
    )
    fresh = Delivery(notification=notification, app=app, platform="ios", device_ref=uuid.uuid4())
    objects_insert([given, fresh])
    assert given.id == 10**9 and fresh.id is not None
    assert set(Delivery.objects.values_list("id", "platform")) == {
        (10**9, "web"),
        (fresh.id, "ios"),
    }
