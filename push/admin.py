"""The Django admin's view of push: read-only where an edit would break what services keep.

Rows are written by services (devices, sends) and the delivery wing (statuses, receipts), each
keeping invariants the admin cannot: a status moves with its claim and lease, a notification
rolls up from its deliveries, keys are provisioned together. So the admin only reads them;
an app's daily quota is the one field it may change, and a device the one row it may delete.
Tokens, keys and secrets are never shown (the encrypted fields are excluded outright).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from push.models import (
    AuditEvent,
    Delivery,
    Device,
    Notification,
    PushConfig,
    Receipt,
    ReceiptAttempt,
    WorkerHeartbeat,
)

# Never shown, whatever the model: push tokens, their lookup HMAC, keys and secrets.
SECRET_FIELDS = (
    "token",
    "token_hmac",
    "webhook_secret",
    "vapid_private_key",
    "fcm_service_account",
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and shows rows; never adds, changes or deletes them."""

    deletable = False

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [f.name for f in self.model._meta.fields]
        return [name for name in SECRET_FIELDS if name in fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        excluded = set(self.get_exclude(request, obj))
        editable = set(getattr(self, "editable_fields", ()))
        return [
            f.name
            for f in self.model._meta.fields
            if f.name not in excluded and f.name not in editable
        ]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # "Change" is also what lets a user open the detail page, read-only here.
        return bool(getattr(self, "editable_fields", ())) and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.deletable and super().has_delete_permission(request, obj)


@admin.register(PushConfig)
class PushConfigAdmin(ReadOnlyAdmin):
    list_display = ["app", "enabled", "daily_quota", "webhook_url", "webhook_disabled_at"]
    list_filter = ["enabled"]
    search_fields = ["app__name"]
    editable_fields = ("daily_quota",)


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    list_display = ["id", "app", "platform", "transport", "label", "last_seen_at"]
    list_filter = ["platform", "transport"]
    search_fields = ["=id", "=user__email"]
    list_select_related = ["app"]
    deletable = True  # removing a registration is what an invalid token does too


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryInline(ReadOnlyInline):
    model = Delivery
    fields = ["id", "device_ref", "platform", "status", "attempts", "error", "updated_at"]
    readonly_fields = fields


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "app", "title", "status", "created_at", "completed_at"]
    list_filter = ["status"]
    search_fields = ["=id", "=user_id"]
    list_select_related = ["app"]
    inlines = [DeliveryInline]


class ReceiptAttemptInline(ReadOnlyInline):
    model = ReceiptAttempt
    fields = ["at", "status_code", "error", "duration_ms"]
    readonly_fields = fields
    show_change_link = False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "app", "platform", "status", "attempts", "error", "updated_at"]
    list_filter = ["status", "platform"]
    search_fields = ["=notification__id", "=device_ref"]
    list_select_related = ["app"]
    raw_id_fields = ["notification", "device"]


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ["webhook_id", "app", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status"]
    search_fields = ["=webhook_id"]
    list_select_related = ["app"]
    inlines = [ReceiptAttemptInline]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "app", "actor", "action"]
    list_filter = ["action"]
    search_fields = ["action", "app__name"]
    list_select_related = ["app", "actor"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "seen_at"]
