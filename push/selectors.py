"""Reads of the push app: devices, notifications, receipts, the Console's charts and lists.

Writes live in push/services/, the worker side in push/delivery/; everything here only reads.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import App, Enrollment, User
from accounts.selectors import apps_administered_by
from keymaster.errors import NotFound
from keymaster.ratelimit import Window, counter_peek
from push.models import (
    AuditEvent,
    Delivery,
    DeliveryStatus,
    Device,
    Notification,
    NotificationStatus,
    Platform,
    PushConfig,
    Receipt,
    ReceiptAttempt,
    ReceiptStatus,
)

DAY = 86_400
# What a send reads of its app's push config: never its secrets.
_SEND_CONFIG = ("enabled", "daily_quota", "track_opens")  # track_opens: the size check


def devices_of_app(
    app: App, *, platform: str | None = None, user_id: Any = None
) -> QuerySet[Device]:
    """Return the app's devices, newest seen first, optionally by platform and user."""
    devices = Device.objects.filter(app=app)
    if platform:
        devices = devices.filter(platform=platform)
    if user_id:
        devices = devices.filter(user_id=user_id)
    # `token` is left out: listing devices never needs to decrypt a push token.
    return devices.defer("token").order_by("-last_seen_at", "id")


def device_count(app: App) -> int:
    return Device.objects.filter(app=app).count()


def devices_of_user_by_app(user: User) -> list[dict[str, Any]]:
    """Return the user's devices grouped by app: ``[{app_id, app_name, muted, devices}]``."""
    devices = (
        Device.objects.filter(user=user)
        .select_related("app")
        .defer("token")
        .order_by("app__name", "app_id", "-last_seen_at")
    )
    muted = set(user.enrollments.filter(muted=True).values_list("app_id", flat=True))
    return [
        {
            "app_id": app.app_id,
            "app_name": app.name,
            "muted": app.app_id in muted,
            "devices": list(group),
        }
        for app, group in groupby(devices, key=lambda device: device.app)
    ]


def webpush_subscription_count(user: User, app: App) -> int:
    return Device.objects.filter(user=user, app=app, transport="webpush").count()


@functools.cache
def _app_for_send_sql() -> str:
    columns = ", ".join(f"c.{name} AS push_{name}" for name in _SEND_CONFIG)
    # Table names are ours and every value is a parameter.
    return (
        f"SELECT a.*, {columns} FROM {App._meta.db_table} a"  # noqa: S608
        f" LEFT JOIN {PushConfig._meta.db_table} c ON c.app_id = a.app_id WHERE a.app_id = %s"
    )


def app_for_send(app_id: Any) -> App:
    """The app a client token names, with what a send reads of its push config, in one query.

    SQL written once: the ORM spent 0.24 ms of CPU building and compiling this select_related
    on every send (bench/README.md, item 18). The config, when the app has one, holds only
    `enabled`, `daily_quota` and `track_opens` (other fields are deferred). Raises
    App.DoesNotExist, or ValueError for an id that is not a UUID.
    """
    pk = App._meta.pk.get_db_prep_value(uuid.UUID(str(app_id)), connection)
    app = next(iter(App.objects.raw(_app_for_send_sql(), [pk])), None)
    if app is None:
        raise App.DoesNotExist(f"No app {app_id}.")
    if app.push_enabled is not None:  # a LEFT JOIN that found the app's config
        values = [
            PushConfig._meta.get_field(name).to_python(getattr(app, f"push_{name}"))
            for name in _SEND_CONFIG
        ]
        app.push_config = PushConfig.from_db(
            app._state.db, ["app_id", *_SEND_CONFIG], [app.pk, *values]
        )
    return app


def quota_key(app_id: Any) -> str:
    """The counter key of an app's daily quota."""
    return f"quota:{app_id}"


def quota_window(config: PushConfig) -> Window:
    """The app's daily quota: epoch-aligned days reset at 00:00 UTC."""
    return Window(quota_key(config.app_id), DAY, config.daily_quota)


def notifications_today(config: PushConfig) -> int:
    """Return how many notifications the app has sent today (its quota's count)."""
    return counter_peek(quota_window(config))


CHART_OUTCOMES = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.INVALID_TOKEN)


@dataclass(frozen=True)
class DayOutcomes:
    """Deliveries created on one UTC day, counted by final outcome."""

    day: dt.date
    delivered: int = 0
    failed: int = 0
    invalid_token: int = 0
    opened: int = 0  # of that day's deliveries, those opened (apps that track opens)

    @property
    def total(self) -> int:
        return self.delivered + self.failed + self.invalid_token


def delivery_outcomes_by_day(
    app: App, *, days: int = 14, today: dt.date | None = None
) -> list[DayOutcomes]:
    """Return the app's deliveries of the last `days` UTC days by outcome, oldest first."""
    today = today or timezone.now().astimezone(dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    # One grouped query over the (app, created_at) index; days with nothing are filled in here.
    rows = (
        Delivery.objects.filter(
            app=app, created_at__gte=start, created_at__lt=end, status__in=CHART_OUTCOMES
        )
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day", "status")
        .annotate(n=Count("id"), opened=Count("opened_at"))
        .order_by()
    )
    counts: dict[dt.date, dict[str, int]] = {}
    for row in rows:
        day = counts.setdefault(row["day"], {"opened": 0})
        day[row["status"]] = row["n"]
        day["opened"] += row["opened"]
    return [
        DayOutcomes(day=day, **counts.get(day, {}))
        for day in (first + dt.timedelta(days=offset) for offset in range(days))
    ]


def device_counts_by_platform(app: App) -> dict[str, int]:
    """Return how many devices the app has on each platform (every platform listed)."""
    rows = Device.objects.filter(app=app).values("platform").annotate(n=Count("id")).order_by()
    counts = {platform.value: 0 for platform in Platform}
    counts.update({row["platform"]: row["n"] for row in rows})
    return counts


def console_devices(app: App, *, platform: str = "", email: str = "") -> QuerySet[Device]:
    """Return the app's devices with their users, newest seen first, filtered for the Console."""
    devices = Device.objects.filter(app=app).select_related("user")
    if platform:
        devices = devices.filter(platform=platform)
    if email:
        devices = devices.filter(user__email__icontains=email.strip())
    # `token` is left out: the Console never shows or needs a push token.
    return devices.defer("token").order_by("-last_seen_at", "id")


def notification_of_app(
    app: App, notification_id: Any, *, with_email: bool = False
) -> Notification:
    """Return one of the app's notifications with its deliveries, or raise NotFound.

    The Console also shows the recipient: `with_email` sets `user_email` (one more query).
    """
    try:
        notification = Notification.objects.prefetch_related(
            Prefetch("deliveries", queryset=Delivery.objects.order_by("id"))
        ).get(pk=notification_id, app=app)
    except (Notification.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such notification.") from None
    if with_email:
        notification.user_email = _emails_of({notification.user_id}).get(notification.user_id, "")
    return notification


def _emails_of(user_ids: set[Any]) -> dict[Any, str]:
    return dict(User.objects.filter(pk__in=user_ids).values_list("id", "email"))


def receipt_of_app(app: App, receipt_id: Any) -> Receipt:
    """Return one of the app's receipts, or raise NotFound."""
    try:
        return Receipt.objects.select_related("app").get(pk=receipt_id, app=app)
    except (Receipt.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such receipt.") from None


def console_apps(user: User) -> QuerySet[App]:
    """Return the apps `user` administers, each with `device_total` and its push config."""
    return (
        apps_administered_by(user)
        .select_related("push_config")
        .annotate(device_total=Count("devices", distinct=True))
        .order_by("name", "app_id")
    )


def browser_push_key() -> str:
    """Return the VAPID public key this site's browsers subscribe with, or "" when push is off."""
    try:
        config = PushConfig.objects.filter(
            app_id=settings.PUSH_DEFAULT_APP_ID or None, enabled=True
        ).first()
    except (ValidationError, ValueError):
        return ""
    return config.vapid_public_key if config else ""


# The Console's paged lists: each returns a queryset the page hands to a Paginator.


def console_notifications(
    app: App,
    *,
    notification_id: Any = None,
    email: str = "",
    status: str = "",
    broadcast: Any = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> QuerySet[Notification]:
    """Return the app's notifications, newest first, filtered for the Console.

    `scheduled` is a queued notification not yet due; `queued` then means due and waiting.
    """
    notifications = Notification.objects.filter(app=app)
    if notification_id:
        notifications = notifications.filter(pk=notification_id)
    if broadcast:
        notifications = notifications.filter(broadcast_id=broadcast)
    not_due = Q(send_at__gt=timezone.now())
    if status == "scheduled":
        notifications = notifications.filter(not_due, status=NotificationStatus.QUEUED)
        status = ""
    elif status == NotificationStatus.QUEUED:
        notifications = notifications.exclude(not_due)
    if email:
        users = User.objects.filter(email__icontains=email.strip()).values("id")
        notifications = notifications.filter(user_id__in=users)
    if status:
        notifications = notifications.filter(status=status)
    # Dates are UTC days, inclusive at both ends; the (app, -created_at) index serves the range.
    if since:
        notifications = notifications.filter(created_at__gte=_utc_midnight(since))
    if until:
        notifications = notifications.filter(
            created_at__lt=_utc_midnight(until + dt.timedelta(days=1))
        )
    return notifications.annotate(device_total=Count("deliveries")).order_by("-created_at", "id")


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def with_user_emails(notifications: Any) -> Any:
    """Set `user_email` on each notification of a page (one query for the page)."""
    emails = _emails_of({n.user_id for n in notifications})
    for notification in notifications:
        notification.user_email = emails.get(notification.user_id, "")
    return notifications


def console_receipts(
    app: App, *, status: str = "", notification_id: Any = None, failing: bool = False
) -> QuerySet[Receipt]:
    """Return the app's receipts, newest first, each with its notification's id."""
    receipts = Receipt.objects.filter(app=app).defer("payload")
    if status:
        receipts = receipts.filter(status=status)
    if notification_id:
        receipts = receipts.filter(delivery__notification_id=notification_id)
    if failing:
        # "Failing now": still being retried after the webhook refused or did not answer.
        receipts = receipts.filter(
            status__in=[ReceiptStatus.PENDING, ReceiptStatus.SENDING], attempts__gt=0
        )
    return (
        receipts.select_related("delivery")
        .prefetch_related(
            Prefetch(
                "attempt_log",
                queryset=ReceiptAttempt.objects.order_by("-at", "-id"),
                to_attr="attempts_newest_first",
            )
        )
        .order_by("-created_at", "-id")
    )


def console_audit_events(app: App, *, actor: str = "", action: str = "") -> QuerySet[AuditEvent]:
    """Return the app's audit events, newest first, filtered by actor email and action."""
    events = AuditEvent.objects.filter(app=app).select_related("actor")
    if actor:
        events = events.filter(actor__email__icontains=actor.strip())
    if action:
        events = events.filter(action=action)
    return events.order_by("-at", "-id")


def audit_actions_of_app(app: App) -> list[str]:
    """Return the distinct audit actions recorded for the app (the filter's choices)."""
    return list(
        AuditEvent.objects.filter(app=app).values_list("action", flat=True).distinct().order_by()
    )


def console_enrollments(app: App, *, email: str = "") -> QuerySet[Enrollment]:
    """Return the app's enrollments with their users, by email."""
    enrollments = Enrollment.objects.filter(app=app).select_related("user")
    if email:
        enrollments = enrollments.filter(user__email__icontains=email.strip())
    return enrollments.order_by("user__email")


def app_admins(app: App) -> QuerySet[User]:
    """Return the app's own admins (staff administer every app and are not listed)."""
    return app.admins.order_by("email")


@dataclass(frozen=True)
class NotificationDetail:
    """One notification for its Console page: deliveries with their receipts, and its sender."""

    notification: Notification
    deliveries: list[Delivery]
    sent_by: AuditEvent | None


def notification_detail(app: App, notification_id: Any) -> NotificationDetail:
    """Return one of the app's notifications with every delivery and receipt, or NotFound."""
    notification = notification_of_app(app, notification_id, with_email=True)
    receipts = Receipt.objects.defer("payload").prefetch_related(
        Prefetch(
            "attempt_log",
            queryset=ReceiptAttempt.objects.order_by("at", "id"),
            to_attr="attempts_oldest_first",
        )
    )
    deliveries = list(
        Delivery.objects.filter(notification=notification)
        .select_related("device")
        .prefetch_related(Prefetch("receipts", queryset=receipts.order_by("id")))
        .order_by("id")
    )
    # A Console test send is audited with the notification's id; anything else came from a client.
    sent_by = (
        AuditEvent.objects.filter(
            app=app, action="notification.test_send", detail__notification_id=str(notification.pk)
        )
        .select_related("actor")
        .first()
    )
    return NotificationDetail(notification=notification, deliveries=deliveries, sent_by=sent_by)


def web_endpoint_digests(user: User) -> dict[Any, str]:
    """Return the SHA-256 (hex) of each of the user's Web Push endpoints, by device id.

    The Account page marks "this browser" by comparing them with the digest of the browser's own
    subscription: the endpoint itself never goes into the page.
    """
    devices = Device.objects.filter(user=user, transport="webpush").only("id", "token")
    digests = {}
    for device in devices:
        try:
            endpoint = json.loads(device.token)["endpoint"]
        except (ValueError, KeyError, TypeError):
            continue
        digests[device.id] = hashlib.sha256(endpoint.encode()).hexdigest()
    return digests


def browser_push_apps(user: User) -> list[PushConfig]:
    """Return the push configs this browser may subscribe for: the site's own app, then the
    user's enrolled apps that have push on (each with its `app` loaded), by name."""
    default = browser_push_key()
    configs = PushConfig.objects.filter(enabled=True).exclude(vapid_public_key="")
    enrolled = configs.filter(app__enrollments__user=user)
    if default:
        enrolled = enrolled | configs.filter(app_id=settings.PUSH_DEFAULT_APP_ID)
    return list(enrolled.select_related("app").distinct().order_by("app__name", "app_id"))


def device_of_app(app: App, device_id: Any) -> Device | None:
    """Return one of the app's devices with its user, or None."""
    try:
        return Device.objects.defer("token").select_related("user").get(pk=device_id, app=app)
    except (Device.DoesNotExist, ValueError, TypeError, ValidationError):
        return None


# The Console warns of the devices that the daily removal (push/delivery/stale_devices.py)
# takes within this many days.
STALE_WARN_DAYS = 30


def stale_cutoff(now: dt.datetime | None = None) -> dt.datetime | None:
    """Devices last registered before this are stale (None: removal is off)."""
    days = settings.DEVICE_STALE_DAYS
    return (now or timezone.now()) - dt.timedelta(days=days) if days else None


def devices_going_stale(*, app: App, now: dt.datetime | None = None) -> int:
    """How many of `app`'s devices the daily task will remove within STALE_WARN_DAYS."""
    cutoff = stale_cutoff(now)
    if cutoff is None:
        return 0
    soon = cutoff + dt.timedelta(days=STALE_WARN_DAYS)
    return Device.objects.filter(app=app, last_seen_at__lt=soon).count()
