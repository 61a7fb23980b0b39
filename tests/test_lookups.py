"""`field__any=[...]`: the rows `__in` finds, with the list as one array parameter on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from keymaster.models import Counter
from push.models import Notification
from tests.factories import enroll, make_push_app, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def counters():
    return [Counter.objects.create(key=f"k{n}", window_start=n) for n in range(5)]


def _ids(queryset) -> list:
    return sorted(queryset.values_list("pk", flat=True))


@pytest.mark.parametrize(
    "pick",
    [
        lambda ids: ids[1:3],
        lambda ids: [ids[0], ids[0], ids[4]],  # repeated
        lambda ids: {ids[2], ids[3]},  # any iterable of values
        lambda ids: [None, ids[1]],  # None matches nothing, as with __in
        lambda ids: [],  # nothing
        lambda ids: [10**12],  # no such row
    ],
)
def test_any_finds_what_in_finds_in_filter_and_exclude(counters, pick):
    ids = [c.pk for c in counters]
    wanted = pick(ids)
    rows = Counter.objects.all()
    assert _ids(rows.filter(pk__any=wanted)) == _ids(rows.filter(pk__in=wanted))
    assert _ids(rows.exclude(pk__any=wanted)) == _ids(rows.exclude(pk__in=wanted))
    assert _ids(rows.filter(pk__any=wanted)) == sorted(set(ids) & set(wanted))


def test_any_on_a_foreign_key_and_on_uuids():
    app, other = make_push_app(), make_push_app()
    user = make_user()
    enroll(app, user)
    enroll(other, user)
    mine = Notification.objects.create(app=app, user_id=user.id, title="t", body="b")
    Notification.objects.create(app=other, user_id=user.id, title="t", body="b")
    assert list(Notification.objects.filter(app_id__any=[app.pk])) == [mine]
    assert list(Notification.objects.filter(app__any=[app])) == [mine]
    assert list(Notification.objects.filter(id__any=[mine.id, uuid.uuid4()])) == [mine]
    assert Notification.objects.filter(id__any=[str(mine.id)]).get() == mine


def test_the_list_is_one_parameter_on_postgresql_and_in_elsewhere(counters):
    ids = [c.pk for c in counters]
    sql, params = Counter.objects.filter(pk__any=ids).query.sql_with_params()
    if connection.vendor == "postgresql":
        assert sql.endswith('"id" = ANY(%s::bigint[])') and params == (ids,)
    else:
        assert f"IN ({', '.join(['%s'] * len(ids))})" in sql and list(params) == ids
