"""Inserting many new rows in one round trip: PostgreSQL's COPY, `bulk_create` elsewhere.

`bulk_create` spends most of a 500-notification send building its INSERT: every value goes
through the SQL compiler and into a text array for UNNEST (bench/README.md). COPY takes the
same values as rows, so on PostgreSQL the instances are written with it instead. Fewer rows
than COPY needs to pay off go in one INSERT whose text is built once per model and row count:
for the single row of a single send, `bulk_create` cost more than the rest of the insert.

Values that psycopg stores as they are (UUIDs, strings, numbers, booleans, datetimes, in the
plain Django fields that hold them) are passed straight through; every other field (JSON,
encrypted text, anything custom) goes through its own `pre_save` and `get_db_prep_save`, as
`bulk_create` would prepare it, so it is stored the same either way.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, connections, models

COPY_FROM = 20  # rows

# Exact classes (a subclass may prepare its values, as encrypted fields do).
_PLAIN = frozenset(
    {
        models.UUIDField,
        models.CharField,
        models.TextField,
        models.IntegerField,
        models.BigIntegerField,
        models.PositiveIntegerField,
        models.PositiveSmallIntegerField,
        models.SmallIntegerField,
        models.BooleanField,
        models.DateTimeField,
        models.AutoField,
        models.BigAutoField,
    }
)


def objects_insert(objs: Sequence[models.Model]) -> None:
    """Insert new instances of one model; auto primary keys are set on them, as bulk_create does.

    On PostgreSQL, from COPY_FROM rows on, they are written with COPY. COPY returns no ids:
    auto primary keys are first taken from the column's sequence, so they are known (and set)
    before the rows are written.
    """
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=1000)
        return
    meta = model._meta
    pk = meta.pk
    auto_pk = isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField)
    missing = [obj for obj in objs if obj.pk is None] if auto_pk else []
    # COPY costs a round trip of its own to start: a few rows go faster as one INSERT.
    if len(objs) < COPY_FROM:
        _insert(model, objs, returning=bool(missing))
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if missing:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, pk.column, len(missing)],
            )
            for obj, (value,) in zip(missing, cursor.fetchall(), strict=True):
                obj.pk = value
        fields = meta.concrete_fields
        values = [_value_of(field) for field in fields]
        columns = ", ".join(quote(field.column) for field in fields)
        sql = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
        # The psycopg cursor under Django's wrapper: COPY is psycopg's API, not the DB-API's.
        with cursor.cursor.copy(sql) as copy:
            for obj in objs:
                copy.write_row([value(obj) for value in values])
    _mark_saved(objs)


def _insert(model: type[models.Model], objs: Sequence[models.Model], *, returning: bool) -> None:
    """One INSERT of `objs`; with `returning`, every auto primary key comes from the database."""
    if returning and any(obj.pk is not None for obj in objs):
        model.objects.bulk_create(objs)  # some keys given, some not: bulk_create sorts that out
        return
    fields = _inserted_fields(model, returning)
    values = [_value_of(field) for field in fields]  # per call: they hold this thread's wrapper
    params = [value(obj) for obj in objs for value in values]
    sql = _insert_sql(model, len(objs), returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            # As bulk_create relies on too: RETURNING gives the rows in VALUES order.
            for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
                obj.pk = pk
    _mark_saved(objs)


def _mark_saved(objs: Sequence[models.Model]) -> None:
    """As `bulk_create` leaves its instances: saved, in this database."""
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def _inserted_fields(model: type[models.Model], returning: bool) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if not (returning and f.primary_key)]


@functools.lru_cache(maxsize=64)
def _insert_sql(model: type[models.Model], rows: int, returning: bool) -> str:
    meta = model._meta
    quote = connection.ops.quote_name
    fields = _inserted_fields(model, returning)
    columns = ", ".join(quote(field.column) for field in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    every_row = ", ".join([row] * rows)
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {every_row}"  # noqa: S608
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql


def _value_of(field: models.Field) -> Callable[[models.Model], Any]:
    """How to read `field` of an instance as the value to store."""
    plain = type(field) in _PLAIN or (
        type(field) is models.ForeignKey and type(field.target_field) in _PLAIN
    )
    if not plain or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        db = connections[connection.alias]  # the real wrapper, not the per-access proxy
        return lambda obj: field.get_db_prep_save(field.pre_save(obj, True), db)
    # Choices members are str and int subclasses, which psycopg stores as their values.
    return operator.attrgetter(field.attname)
