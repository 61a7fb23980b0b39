"""Push config, devices, notifications, their deliveries and the receipts sent about them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import App
from keymaster.crypto import EncryptedTextField
from push.transports.base import MAX_TTL  # noqa: F401 - stated once, with the transports


def _default_quota() -> int:
    return settings.PUSH_DEFAULT_DAILY_QUOTA


class PushConfig(models.Model):
    """An app's push settings; keys and the webhook secret are provisioned on first enable."""

    app = models.OneToOneField(
        App, on_delete=models.CASCADE, primary_key=True, related_name="push_config"
    )
    enabled = models.BooleanField(default=False)
    webhook_url = models.CharField(max_length=2000, blank=True)
    webhook_secret = EncryptedTextField(blank=True)
    # The secret a rotation replaced: it signs receipts beside the new one until the time below.
    webhook_secret_previous = EncryptedTextField(blank=True)
    webhook_secret_previous_until = models.DateTimeField(null=True, blank=True)
    daily_quota = models.PositiveIntegerField(default=_default_quota)
    vapid_private_key = EncryptedTextField(blank=True, help_text="PKCS8 PEM")
    vapid_public_key = models.CharField(max_length=100, blank=True, help_text="base64url point")
    fcm_service_account = EncryptedTextField(blank=True, help_text="per-app override (JSON)")
    fcm_project_id = models.CharField(max_length=200, blank=True)
    fcm_client_email = models.CharField(max_length=300, blank=True)
    # A 410 from the webhook turns receipts off until the URL is changed.
    webhook_disabled_at = models.DateTimeField(null=True, blank=True)
    webhook_disabled_reason = models.CharField(max_length=300, blank=True)
    # The last delivery failure that means a misconfigured app (not a dead token).
    last_error = models.CharField(max_length=300, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Origins of the app's own web pages that may call the browser endpoints (push.cors).
    allowed_origins = models.JSONField(default=list, blank=True)
    # Web Push payloads carry a per-delivery open token; opens are recorded (push.opens).
    track_opens = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"push config of {self.app_id}"

    @property
    def is_provisioned(self) -> bool:
        return bool(self.vapid_private_key and self.webhook_secret)


class Platform(models.TextChoices):
    WEB = "web"
    IOS = "ios"
    ANDROID = "android"


class Transport(models.TextChoices):
    FCM = "fcm"
    WEBPUSH = "webpush"


class Device(models.Model):
    """One registered push token (FCM) or Web Push subscription of one user in one app."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="devices")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="devices"
    )
    platform = models.CharField(max_length=10, choices=Platform.choices)
    transport = models.CharField(max_length=10, choices=Transport.choices)
    # The FCM token, or the Web Push subscription as JSON: encrypted, never logged.
    token = EncryptedTextField()
    token_hmac = models.CharField(max_length=64)
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Re-registering a token finds its device by (app, token_hmac): this index.
            models.UniqueConstraint(fields=["app", "token_hmac"], name="uniq_device_token")
        ]
        indexes = [
            # Fan-out on send: the devices of these users in this app.
            models.Index(fields=["app", "user"], name="device_app_user"),
            # The Account page: a user's devices across apps.
            models.Index(fields=["user", "app"], name="device_user_app"),
            # The daily stale-device removal, oldest registrations first (delivery.stale_devices).
            models.Index(fields=["last_seen_at"], name="device_last_seen"),
        ]

    def __str__(self) -> str:
        return f"{self.platform} device {self.id}"


class NotificationStatus(models.TextChoices):
    QUEUED = "queued"  # deliveries outstanding
    DELIVERED = "delivered"  # every delivery ended, at least one reached a device
    FAILED = "failed"  # every delivery ended, none reached a device
    NO_DEVICES = "no_devices"  # the user had no registered device when it was sent
    CANCELED = "canceled"  # canceled before any delivery was handed to a provider
    MUTED = "muted"  # the user muted the app: recorded, never delivered, not counted


class Priority(models.TextChoices):
    NORMAL = "normal"
    HIGH = "high"


class Urgency(models.TextChoices):
    VERY_LOW = "very-low"
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Notification(models.Model):
    """One accepted message to one user of one app."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed alone: the (app, -created_at) index serves every lookup by app. One index
    # fewer to write on each of the busiest tables' inserts (bench/README.md).
    app = models.ForeignKey(
        App, on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    user_id = models.UUIDField()
    title = models.CharField(max_length=256)
    body = models.TextField()
    data = models.JSONField(default=dict)
    ttl = models.PositiveIntegerField(default=MAX_TTL)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    collapse_key = models.CharField(max_length=100, blank=True)
    urgency = models.CharField(max_length=10, choices=Urgency.choices, blank=True)
    status = models.CharField(
        max_length=12, choices=NotificationStatus.choices, default=NotificationStatus.QUEUED
    )
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Not sent before this (a scheduled send); null: sent when accepted. TTL counts from it.
    send_at = models.DateTimeField(null=True, blank=True)
    # Not indexed alone: the partial unique index below serves the lookups by broadcast.
    broadcast = models.ForeignKey(
        "Broadcast",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
        db_index=False,
    )

    class Meta:
        indexes = [
            # The Console's recent notifications and 14-day chart of one app.
            models.Index(fields=["app", "-created_at"], name="notification_app_recent"),
            # The retention prune's batches, oldest first, in keyset order (delivery.retention).
            models.Index(fields=["created_at", "id"], name="notification_created"),
            # The scheduled notifications of an app (selectors.scheduled_notifications_of_app).
            models.Index(
                fields=["app", "send_at"],
                condition=models.Q(send_at__isnull=False),
                name="notification_app_send_at",
            ),
        ]
        constraints = [
            # A broadcast's fan-out never makes two notifications for one user, even run twice;
            # also the index of a broadcast's counts by status.
            models.UniqueConstraint(
                fields=["broadcast", "user_id"],
                condition=models.Q(broadcast__isnull=False),
                name="uniq_broadcast_user",
            )
        ]

    def __str__(self) -> str:
        return f"notification {self.id}"

    @property
    def expires_at(self):  # noqa: ANN201 - datetime
        return (self.send_at or self.created_at) + timezone.timedelta(seconds=self.ttl)

    def is_scheduled(self, now=None) -> bool:  # noqa: ANN001 - datetime
        """Queued and not yet due: shown as `scheduled`."""
        now = now or timezone.now()
        return self.status == NotificationStatus.QUEUED and bool(
            self.send_at and self.send_at > now
        )

    def ttl_left(self) -> int:
        """Return the seconds left before `expires_at` (0 for a TTL of 0: now or never)."""
        # A retried message keeps its original deadline: providers get only the time left.
        left = (self.expires_at - timezone.now()).total_seconds()
        return max(0, int(left)) if self.ttl else 0


def outbox_indexes(name: str, waiting: str) -> list[models.Index]:
    """The sweeper's indexes on an outbox table (push.delivery.outbox): due rows, stale claims.

    Partial, and on predicates the statements that work by primary key cannot match: a claim,
    a record or a roll-up that could use them would read them whole, with the entry of every
    row that passed through since the last vacuum (bench/README.md). `claimed_until` is set
    exactly while a row is claimed, so the sweeper's `claimed_until < now` finds the claims.
    """
    return [
        models.Index(
            fields=["next_attempt_at"], condition=models.Q(status=waiting), name=f"{name}_due"
        ),
        models.Index(
            fields=["claimed_until"],
            condition=models.Q(claimed_until__isnull=False),
            name=f"{name}_claimed",
        ),
    ]


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued"  # waiting for a worker (first attempt or a retry at next_attempt_at)
    SENDING = "sending"  # claimed by a worker until claimed_until
    DELIVERED = "delivered"
    FAILED = "failed"
    INVALID_TOKEN = "invalid_token"
    CANCELED = "canceled"  # its notification was canceled before it was handed to a provider


DELIVERY_FINAL = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.INVALID_TOKEN)


class Delivery(models.Model):
    """One notification to one device, and where that stands."""

    id = models.BigAutoField(primary_key=True)
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    # Not indexed alone, as Notification.app: (app, created_at) serves lookups by app.
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+", db_index=False)
    # The device may be removed (invalid token, revoked) while the receipt still names it.
    device = models.ForeignKey(Device, on_delete=models.SET_NULL, null=True, related_name="+")
    device_ref = models.UUIDField()
    platform = models.CharField(max_length=10, choices=Platform.choices)
    status = models.CharField(
        max_length=14, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED
    )
    attempts = models.PositiveIntegerField(default=0)
    # Not sent before this (backoff, the provider's Retry-After).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # When a task for it was last queued: the sweeper queues again only if none ran since.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=100, blank=True)
    error_detail = models.CharField(max_length=300, blank=True)
    # When its user opened it (POST /push/opened): set once.
    opened_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            *outbox_indexes("delivery", DeliveryStatus.QUEUED),
            # The Console's 14-day chart by outcome.
            models.Index(fields=["app", "created_at"], name="delivery_app_day"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


class ReceiptStatus(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up: retries ran out, or the webhook answered 410


class Receipt(models.Model):
    """A delivery receipt in the outbox: persisted first, then POSTed to the app's webhook."""

    id = models.BigAutoField(primary_key=True)
    # Not indexed alone, as Notification.app: (app, -created_at) serves lookups by app.
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="receipts", db_index=False)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="receipts")
    # `webhook-id`: the same on every retry, so receivers can drop replays and duplicates.
    # Unique by a constraint: `unique=True` would add a second (LIKE) index nothing uses.
    webhook_id = models.CharField(max_length=64)
    payload = models.TextField(help_text="the exact JSON body that is signed and sent")
    status = models.CharField(
        max_length=10, choices=ReceiptStatus.choices, default=ReceiptStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            *outbox_indexes("receipt", ReceiptStatus.PENDING),
            # The Console's recent receipts of one app.
            models.Index(fields=["app", "-created_at"], name="receipt_app_recent"),
        ]
        constraints = [models.UniqueConstraint(fields=["webhook_id"], name="uniq_webhook_id")]

    def __str__(self) -> str:
        return f"receipt {self.webhook_id} ({self.status})"


class ReceiptAttempt(models.Model):
    """One POST of a receipt to a webhook, for the Console."""

    receipt = models.ForeignKey(Receipt, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"attempt {self.status_code or self.error} at {self.at:%Y-%m-%d %H:%M:%S}"


class IdempotencyRecord(models.Model):
    """The first answer to a send with an `Idempotency-Key`, replayed for 24 hours."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=50)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A repeat finds the first answer by (app, key); the constraint makes repeats racing
            # each other end in one send.
            models.UniqueConstraint(fields=["app", "key"], name="uniq_idempotency_key")
        ]
        indexes = [
            # Pruning records older than 24 hours.
            models.Index(fields=["created_at"], name="idempotency_created"),
        ]

    def __str__(self) -> str:
        return f"idempotency key {self.key[:20]}"


class AuditEvent(models.Model):
    """Who changed what in an app's push setup, and when (shown on the Console)."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    action = models.CharField(max_length=50)
    detail = models.JSONField(default=dict)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The Console's audit list of one app, newest first.
            models.Index(fields=["app", "-at"], name="audit_app_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} at {self.at:%Y-%m-%d %H:%M:%S}"


class WorkerHeartbeat(models.Model):
    """A qcluster worker process's last sign of life, for `/readyz` (push.delivery.monitor)."""

    name = models.CharField(max_length=200, primary_key=True, help_text="host:pid")
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"worker {self.name} seen at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class BroadcastStatus(models.TextChoices):
    FANNING_OUT = "fanning_out"  # notifications are being created, chunk by chunk
    DONE = "done"  # one notification per recipient exists
    CANCELED = "canceled"


class Broadcast(models.Model):
    """One send to every user of an app who has a device (of some platforms, in a topic)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="broadcasts")
    title = models.CharField(max_length=256)
    body = models.TextField()
    data = models.JSONField(default=dict)
    ttl = models.PositiveIntegerField(default=MAX_TTL)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    collapse_key = models.CharField(max_length=100, blank=True)
    urgency = models.CharField(max_length=10, choices=Urgency.choices, blank=True)
    send_at = models.DateTimeField(null=True, blank=True)
    topic = models.CharField(max_length=64, blank=True)
    platforms = models.JSONField(default=list)  # empty: every platform
    status = models.CharField(
        max_length=12, choices=BroadcastStatus.choices, default=BroadcastStatus.FANNING_OUT
    )
    recipients = models.PositiveIntegerField(default=0)  # counted at acceptance
    # Quota held for it on the day it is due: settled against what was sent when it ends.
    quota_taken = models.PositiveIntegerField(default=0)
    # Fan-out goes through the recipients in user id order; each chunk commits with this.
    cursor = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The last chunk's commit: a fan-out quiet for long has lost its worker (the sweeper).
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The Console's broadcasts of one app, newest first.
            models.Index(fields=["app", "-created_at"], name="broadcast_app_recent"),
            # The sweeper's unfinished fan-outs.
            models.Index(
                fields=["updated_at"],
                condition=models.Q(status="fanning_out"),
                name="broadcast_fanning_out",
            ),
        ]

    def __str__(self) -> str:
        return f"broadcast {self.id} ({self.status})"


class Topic(models.Model):
    """A named group of an app's users, managed by its backend."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="topics")
    name = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Also the index of an app's topics by name.
        constraints = [models.UniqueConstraint(fields=["app", "name"], name="uniq_topic_name")]

    def __str__(self) -> str:
        return f"topic {self.name}"


class TopicMember(models.Model):
    """One enrolled user in one topic: leaving the app (the enrollment) leaves its topics."""

    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="member_rows")
    # Indexed (the default): an enrollment removed takes its memberships by it (cascade).
    enrollment = models.ForeignKey(
        "accounts.Enrollment", on_delete=models.CASCADE, related_name="+"
    )
    user_id = models.UUIDField()  # the enrollment's user, for the broadcast's join and listing

    class Meta:
        constraints = [
            # Adding a member twice is one membership; also the topic's member list by user.
            models.UniqueConstraint(fields=["topic", "user_id"], name="uniq_topic_member")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.topic_id}"
