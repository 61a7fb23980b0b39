"""Reads for the Console's Notifications tab: charts, counts, recent activity, the audit list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import App, User
from accounts.selectors import apps_administered_by
from keymaster.errors import NotFound
from push.models import (
    AuditEvent,
    Delivery,
    DeliveryStatus,
    Device,
    Notification,
    Platform,
    PushConfig,
    Receipt,
    ReceiptAttempt,
)

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


def recent_notifications(app: App, *, limit: int = 10) -> list[Notification]:
    """Return the app's latest notifications with their deliveries and `user_email` set."""
    notifications = list(
        Notification.objects.filter(app=app)
        .order_by("-created_at")
        .prefetch_related(Prefetch("deliveries", queryset=Delivery.objects.order_by("id")))[:limit]
    )
    emails = _emails_of({n.user_id for n in notifications})
    for notification in notifications:
        notification.user_email = emails.get(notification.user_id, "")
    return notifications


def notification_of_app(app: App, notification_id: Any) -> Notification:
    """Return one of the app's notifications with its deliveries, or raise NotFound."""
    try:
        notification = Notification.objects.prefetch_related(
            Prefetch("deliveries", queryset=Delivery.objects.order_by("id"))
        ).get(pk=notification_id, app=app)
    except (Notification.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such notification.") from None
    notification.user_email = _emails_of({notification.user_id}).get(notification.user_id, "")
    return notification


def _emails_of(user_ids: set[Any]) -> dict[Any, str]:
    return dict(User.objects.filter(pk__in=user_ids).values_list("id", "email"))


def recent_receipts(app: App, *, limit: int = 10, attempts: int = 5) -> list[Receipt]:
    """Return the app's latest receipts, each with `recent_attempts` (newest first)."""
    receipts = list(
        Receipt.objects.filter(app=app)
        .defer("payload")
        .order_by("-created_at", "-id")
        .prefetch_related(
            Prefetch(
                "attempt_log",
                queryset=ReceiptAttempt.objects.order_by("-at", "-id"),
                to_attr="attempts_newest_first",
            )
        )[:limit]
    )
    for receipt in receipts:
        receipt.recent_attempts = receipt.attempts_newest_first[:attempts]
    return receipts


def receipt_of_app(app: App, receipt_id: Any) -> Receipt:
    """Return one of the app's receipts, or raise NotFound."""
    try:
        return Receipt.objects.select_related("app").get(pk=receipt_id, app=app)
    except (Receipt.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such receipt.") from None


def audit_events_of_app(app: App, *, limit: int = 50) -> QuerySet[AuditEvent]:
    """Return the app's latest audit events with who did them."""
    return AuditEvent.objects.filter(app=app).select_related("actor").order_by("-at", "-id")[:limit]


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
