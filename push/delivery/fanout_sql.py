"""A broadcast chunk made by PostgreSQL itself: one INSERT … SELECT for its notifications and
their deliveries.

The ORM path (push.delivery.fanout) reads the chunk's users and devices into Python, builds a
Notification and a Delivery object per row and COPYs them back: ~2,000 notifications/s on the
2-core box, nearly all of it Python (bench/README.md, "Broadcasts and schedules"). Here one
statement reads the chunk's audience (the same queryset, `broadcast_audience`, compiled to SQL),
inserts one notification per user (ids from `gen_random_uuid()`, muted users as `muted`) and one
delivery per device of the non-muted ones (of the broadcast's platforms), and returns the
delivery ids to queue. Nothing goes through Python per row. The caller commits it with the
cursor and the queued tasks, as it does the ORM path's rows.

Columns the broadcast does not decide take their model default, read from the model at call
time: a column added later is written as an ORM insert would write it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model, QuerySet

from push.models import Broadcast, Delivery, Device, Notification, NotificationStatus
from push.services.notifications import content_of


def chunk_insert(
    broadcast: Broadcast, audience: QuerySet, now: datetime
) -> tuple[int, int, Any, list[int]]:
    """Make the notifications and deliveries of `audience` (ordered, limited) in one statement.

    Return how many notifications were made, how many of them muted, the last user id, and the
    new delivery ids.
    """
    audience_sql, audience_params = audience.values("user_id", "muted").query.sql_with_params()
    notifications_sql, notifications_params = _notifications_insert(broadcast, now)
    deliveries_sql, deliveries_params = _deliveries_insert(broadcast, now)
    sql = (
        f"WITH audience AS ({audience_sql}),"  # noqa: S608 (ours; every value is a parameter)
        f" made AS ({notifications_sql}),"
        f" sent AS ({deliveries_sql})"
        " SELECT (SELECT count(*) FROM made),"
        " (SELECT count(*) FROM made WHERE status = %s),"
        " (SELECT user_id FROM made ORDER BY user_id DESC LIMIT 1),"
        " ARRAY(SELECT id FROM sent ORDER BY id)"
    )
    with connection.cursor() as cursor:
        params = [*audience_params, *notifications_params, *deliveries_params]
        cursor.execute(sql, [*params, NotificationStatus.MUTED.value])
        made, muted, last_user, delivery_ids = cursor.fetchone()
    return made, muted, last_user, list(delivery_ids)


def _notifications_insert(broadcast: Broadcast, now: datetime) -> tuple[str, list[Any]]:
    content = content_of(broadcast)
    given: dict[str, tuple[str, list[Any]]] = {
        "id": ("gen_random_uuid()", []),
        "user_id": ("audience.user_id", []),
        "status": (
            "CASE WHEN audience.muted THEN %s ELSE %s END",
            [NotificationStatus.MUTED.value, NotificationStatus.QUEUED.value],
        ),
        "completed_at": ("CASE WHEN audience.muted THEN %s::timestamptz END", [now]),
        "created_at": ("%s", [now]),
        "app_id": ("%s", [broadcast.app_id]),
        "broadcast_id": ("%s", [broadcast.pk]),
    }
    for name, value in content.items():
        field = Notification._meta.get_field(name)
        given[field.attname] = ("%s", [field.get_db_prep_save(value, connection)])
    columns, values, params = _columns(Notification, given)
    sql = (
        f"INSERT INTO {_quote(Notification._meta.db_table)} ({columns})"  # noqa: S608
        f" SELECT {values} FROM audience RETURNING id, user_id, status"
    )
    return sql, params


def _deliveries_insert(broadcast: Broadcast, now: datetime) -> tuple[str, list[Any]]:
    due = broadcast.send_at or now  # a scheduled one is not due before send_at
    given: dict[str, tuple[str, list[Any]]] = {
        "notification_id": ("made.id", []),
        "app_id": ("%s", [broadcast.app_id]),
        "device_id": ("d.id", []),
        "device_ref": ("d.id", []),
        "platform": ("d.platform", []),
        "created_at": ("%s", [now]),
        "updated_at": ("%s", [now]),
        "next_attempt_at": ("%s", [due]),
        "enqueued_at": ("%s", [due]),
    }
    columns, values, params = _columns(Delivery, given)
    where, where_params = " WHERE made.status = %s", [NotificationStatus.QUEUED.value]
    if broadcast.platforms:
        where += " AND d.platform = ANY(%s)"
        where_params.append(list(broadcast.platforms))
    sql = (
        f"INSERT INTO {_quote(Delivery._meta.db_table)} ({columns})"  # noqa: S608
        f" SELECT {values} FROM made JOIN {_quote(Device._meta.db_table)} d"
        f" ON d.app_id = %s AND d.user_id = made.user_id{where} RETURNING id"
    )
    return sql, [*params, broadcast.app_id, *where_params]


def _columns(
    model: type[Model], given: dict[str, tuple[str, list[Any]]]
) -> tuple[str, str, list[Any]]:
    """The column list, the SELECT list and its parameters: `given`, else the field's default.

    An auto primary key is left to its sequence.
    """
    columns, values, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key and field.attname not in given:
            continue
        columns.append(_quote(field.column))
        if field.attname in given:
            expression, args = given[field.attname]
        else:
            expression = "%s"
            args = [field.get_db_prep_save(field.get_default(), connection)]
        values.append(expression)
        params.extend(args)
    return ", ".join(columns), ", ".join(values), params


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)
