"""Input and output shapes of the push API, with the guide's validation rules."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from keymaster.fields import StrictBooleanField, StrictCharField
from keymaster.openapi import (
    DATA_VALUE_SCHEMA,
    FCM_TOKEN_SCHEMA,
    HTTPS_URL_PATTERN,
    ORIGIN_PATTERN,
    SUBSCRIPTION_SCHEMA,
)
from push.models import MAX_TTL, NotificationStatus, Platform, Priority, Urgency
from push.transports.webpush import MAX_ENDPOINT_LENGTH

DATA_MAX_BYTES = 4096  # FCM's payload limit
MAX_OFFSET = 1_000_000_000


# Keys FCM refuses in `data` (https://firebase.google.com/docs/cloud-messaging/concept-options):
# refused at acceptance, not by FCM on every device later.
FCM_RESERVED_KEYS = frozenset({"from", "message_type", "collapse_key"})
FCM_RESERVED_PREFIXES = ("google.", "gcm.")


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@extend_schema_field({"type": "object", "additionalProperties": DATA_VALUE_SCHEMA})
class DataField(serializers.DictField):
    """`data`: an object of any JSON values, at most 4 KB serialized, no key FCM reserves.

    FCM gets each value as a string (JSON-encoded when it is not one), Web Push as JSON.
    """

    child = serializers.JSONField(allow_null=True)  # any JSON value: null too

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        reserved = [
            key
            for key in value
            if key in FCM_RESERVED_KEYS or key.lower().startswith(FCM_RESERVED_PREFIXES)
        ]
        if reserved:
            raise serializers.ValidationError(
                {key: ["Reserved by FCM (from, message_type, collapse_key, google.*, gcm.*)."]
                 for key in reserved}
            )  # fmt: skip
        too_long = {
            key: [f"Must be at most {DATA_MAX_BYTES} characters; it has {len(item)}."]
            for key, item in value.items()
            if isinstance(item, str) and len(item) > DATA_MAX_BYTES
        }
        if too_long:  # one string alone past the limit: named, as a field
            raise serializers.ValidationError(too_long)
        size = _json_size(value)
        if size > DATA_MAX_BYTES:
            raise serializers.ValidationError(
                f"Must be at most {DATA_MAX_BYTES} bytes serialized (FCM limit); it is {size}."
            )
        return value


SCHEDULE_MAX = timedelta(days=30)
SEND_NOW_WITHIN = timedelta(seconds=1)


class SendAtField(serializers.DateTimeField):
    """`send_at`: RFC 3339 with an offset; past or within a second is now (None)."""

    default_error_messages = {
        "no_offset": "Must be an RFC 3339 date-time with an offset "
        "(e.g. 2026-12-24T08:00:00+01:00).",
        "too_far": "Must be at most 30 days ahead.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            "RFC 3339 with an offset; not sent before this (≤ 30 days ahead; past: now)",
        )
        super().__init__(required=False, allow_null=True, default=None, **kwargs)

    def to_internal_value(self, value: Any) -> datetime | None:
        if not isinstance(value, str):
            self.fail("invalid", format="RFC 3339")
        parsed = parse_datetime(value)
        if parsed is not None and parsed.tzinfo is None:
            self.fail("no_offset")
        send_at = super().to_internal_value(value)
        now = timezone.now()
        if send_at > now + SCHEDULE_MAX:
            self.fail("too_far")
        return send_at if send_at > now + SEND_NOW_WITHIN else None


class ContentIn(serializers.Serializer):
    """The content and delivery options every send shares."""

    title = StrictCharField(max_length=256, trim_whitespace=False)
    body = StrictCharField(max_length=4096, trim_whitespace=False)
    data = DataField(
        required=False,
        default=dict,
        help_text="any JSON values but null; at most 4096 bytes as compact UTF-8 JSON (FCM's "
        "limit); no key FCM reserves (from, message_type, collapse_key, google.*, gcm.*)",
    )
    ttl = serializers.IntegerField(
        min_value=0,
        max_value=MAX_TTL,
        required=False,
        default=MAX_TTL,
        help_text="seconds the message may wait for an offline device (≤ 28 days, FCM's limit)",
    )
    priority = serializers.ChoiceField(Priority.choices, required=False, default=Priority.NORMAL)
    collapse_key = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
    urgency = serializers.ChoiceField(Urgency.choices, required=False, default="")
    send_at = SendAtField()


class SendIn(ContentIn):
    user_id = serializers.UUIDField()
    dry_run = StrictBooleanField(required=False, default=False)


class BatchItemIn(ContentIn):
    user_id = serializers.UUIDField()


def _within_batch_limit(items: list) -> list:
    limit = settings.PUSH_MAX_BATCH_SIZE
    if len(items) > limit:
        raise serializers.ValidationError(f"At most {limit} items per request; got {len(items)}.")
    return items


class BulkIn(ContentIn):
    openapi_request_extra = {"properties": {"user_ids": {"uniqueItems": True}}}

    user_ids = serializers.ListField(child=serializers.UUIDField(), allow_empty=False, min_length=1)
    dry_run = StrictBooleanField(required=False, default=False)

    def validate_user_ids(self, value: list) -> list:
        _within_batch_limit(value)
        seen: dict[Any, int] = {}
        errors = {}
        for index, user_id in enumerate(value):
            if user_id in seen:
                errors[index] = [f"Duplicate of user_ids[{seen[user_id]}]."]
            seen.setdefault(user_id, index)
        if errors:
            raise serializers.ValidationError(errors)
        return value


class BatchIn(serializers.Serializer):
    notifications = serializers.ListField(child=BatchItemIn(), allow_empty=False, min_length=1)
    dry_run = StrictBooleanField(required=False, default=False)

    def validate_notifications(self, value: list) -> list:
        return _within_batch_limit(value)


class SendOut(serializers.Serializer):
    notification_id = serializers.UUIDField(allow_null=True)
    dry_run = serializers.BooleanField(required=False)


class SendManyOut(serializers.Serializer):
    notification_ids = serializers.ListField(child=serializers.UUIDField())
    dry_run = serializers.BooleanField(required=False)


class DeliveryOut(serializers.Serializer):
    device_id = serializers.UUIDField(source="device_ref")
    platform = serializers.CharField()
    status = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()
    updated_at = serializers.DateTimeField()
    opened_at = serializers.DateTimeField(
        allow_null=True, help_text="when its user opened it (apps that track opens)"
    )

    def to_representation(self, instance: Any) -> dict:
        data = super().to_representation(instance)
        data["error"] = data["error"] or None
        return data


class NotificationOut(serializers.Serializer):
    notification_id = serializers.UUIDField(source="id")
    app_id = serializers.UUIDField()
    user_id = serializers.UUIDField()
    title = serializers.CharField()
    body = serializers.CharField()
    data = serializers.DictField(child=serializers.JSONField())
    ttl = serializers.IntegerField()
    priority = serializers.CharField()
    collapse_key = serializers.CharField()
    status = serializers.ChoiceField(
        ["scheduled", *NotificationStatus.values],
        help_text="`scheduled` while queued and not yet due (before `send_at`)",
    )
    created_at = serializers.DateTimeField()
    send_at = serializers.DateTimeField(allow_null=True, help_text="null: sent when accepted")
    completed_at = serializers.DateTimeField(allow_null=True)
    broadcast_id = serializers.UUIDField(
        allow_null=True, help_text="the broadcast it was sent by, if any"
    )
    deliveries = DeliveryOut(many=True)

    def to_representation(self, instance: Any) -> dict:
        data = super().to_representation(instance)
        if instance.is_scheduled():
            data["status"] = "scheduled"
        return data


class CancelOut(serializers.Serializer):
    notification_id = serializers.UUIDField()
    status = serializers.ChoiceField(["canceled"])


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "maxLength": 2000,
        "pattern": HTTPS_URL_PATTERN,  # drf-spectacular adds "" (blank) as a oneOf
        "description": "https URL receipts are POSTed to (internal addresses are refused); "
        "empty or null to stop receipts",
    }
)
class WebhookUrlField(StrictCharField):
    pass


@extend_schema_field({"oneOf": [FCM_TOKEN_SCHEMA, SUBSCRIPTION_SCHEMA]})
class PushTokenField(serializers.JSONField):
    pass


@extend_schema_field(SUBSCRIPTION_SCHEMA["properties"]["endpoint"])
class EndpointField(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "maxLength": 300, "pattern": ORIGIN_PATTERN})
class OriginField(serializers.CharField):
    pass


class ConfigIn(serializers.Serializer):
    enabled = StrictBooleanField(required=False)
    webhook_url = WebhookUrlField(
        max_length=2000,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="https URL receipts are POSTed to; empty or null to stop receipts",
    )
    daily_quota = serializers.IntegerField(min_value=1, max_value=2_000_000_000, required=False)
    allowed_origins = serializers.ListField(
        child=OriginField(max_length=300),
        required=False,
        max_length=50,
        help_text="origins of the app's own web pages that may call the browser endpoints "
        "(https://host[:port]; http only for localhost and 127.0.0.1); at most 50",
    )
    track_opens = StrictBooleanField(
        required=False, help_text="put an open token in each Web Push payload (POST /push/opened)"
    )


class ConfigOut(serializers.Serializer):
    enabled = serializers.BooleanField()
    webhook_url = serializers.CharField(allow_blank=True)
    webhook_secret = serializers.CharField(allow_blank=True)
    daily_quota = serializers.IntegerField()
    device_count = serializers.IntegerField()
    notifications_today = serializers.IntegerField()
    vapid_public_key = serializers.CharField(
        allow_blank=True, help_text="base64url P-256 point: the browser's applicationServerKey"
    )
    webhook_disabled_reason = serializers.CharField(allow_blank=True)
    last_error = serializers.CharField(allow_blank=True)
    allowed_origins = serializers.ListField(child=serializers.CharField())
    track_opens = serializers.BooleanField()


class RegisterIn(serializers.Serializer):
    # A subscription object needs platform "web"; a token string goes with any platform.
    openapi_request_extra = {
        "oneOf": [
            {"properties": {"push_token": {"type": "string"}}},
            # A pattern, not an enum: drf-spectacular would turn the enum into Platform's.
            {
                "properties": {
                    "platform": {"type": "string", "pattern": "^web$"},
                    "push_token": {"type": "object"},
                }
            },
        ]
    }

    app_id = serializers.UUIDField()
    platform = serializers.ChoiceField(Platform.choices)
    push_token = PushTokenField(
        help_text="an FCM registration token, or (web) a PushSubscription object or its JSON"
    )


class OpenedIn(serializers.Serializer):
    """POST /push/opened: a Web Push payload's open_token, or (with a user JWT) the id."""

    openapi_request_extra = {"oneOf": [{"required": ["token"]}, {"required": ["notification_id"]}]}

    token = StrictCharField(required=False, max_length=100, help_text="open_token of a payload")
    notification_id = serializers.UUIDField(
        required=False, help_text="from FCM's data, with the user's Bearer token"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("token" in attrs) == ("notification_id" in attrs):
            raise serializers.ValidationError("Give either token or notification_id.")
        return attrs


class DeviceIdOut(serializers.Serializer):
    device_id = serializers.UUIDField()


_KEYS_SCHEMA = SUBSCRIPTION_SCHEMA["properties"]["keys"]["properties"]


@extend_schema_field(_KEYS_SCHEMA["p256dh"])
class P256dhField(serializers.CharField):
    pass


@extend_schema_field(_KEYS_SCHEMA["auth"])
class AuthSecretField(serializers.CharField):
    pass


class PushKeysIn(serializers.Serializer):
    p256dh = P256dhField()
    auth = AuthSecretField()


class SubscribeIn(serializers.Serializer):
    """The browser's PushSubscription.toJSON(), as the second seed, plus an optional app_id."""

    endpoint = EndpointField(max_length=MAX_ENDPOINT_LENGTH)
    expirationTime = serializers.IntegerField(required=False, allow_null=True)  # noqa: N815
    keys = PushKeysIn()
    app_id = serializers.UUIDField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Without a default app the browser must say which app (and the schema says so).
        self.fields["app_id"].required = not settings.PUSH_DEFAULT_APP_ID


class SubscribeOut(serializers.Serializer):
    ok = serializers.BooleanField()
    count = serializers.IntegerField()


class DeviceOut(serializers.Serializer):
    device_id = serializers.UUIDField(source="id")
    user_id = serializers.UUIDField()
    platform = serializers.CharField()
    label = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField()


class DeviceListOut(serializers.Serializer):
    devices = DeviceOut(many=True)
    total = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class DeviceListQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=500, required=False, default=100)
    # Bounded: an offset past the database's integer range was a 500, not an empty page.
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False, default=0)
    platform = serializers.ChoiceField(Platform.choices, required=False)
    user_id = serializers.UUIDField(required=False)


class AccountDeviceOut(serializers.Serializer):
    device_id = serializers.UUIDField(source="id")
    platform = serializers.CharField()
    label = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField()


class AccountAppDevicesOut(serializers.Serializer):
    app_id = serializers.UUIDField()
    app_name = serializers.CharField()
    muted = serializers.BooleanField(help_text="the user muted this app: nothing is delivered")
    devices = AccountDeviceOut(many=True)


class AccountDevicesOut(serializers.Serializer):
    user_id = serializers.UUIDField(help_text="yours: the id an app's backend sends to")
    apps = AccountAppDevicesOut(many=True)
    total = serializers.IntegerField()
