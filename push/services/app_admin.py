"""What an app admin does from the Console that the API has no service for."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction

from accounts.models import App, User
from accounts.selectors import user_is_enrolled
from keymaster.errors import InvalidInput, NotFound
from push.models import Device, PushConfig
from push.services.audit import audit_record
from push.services.broadcasts import broadcast_cancel
from push.services.config import push_config_for
from push.services.notifications import NotificationDraft, notifications_send
from push.services.scheduling import notification_cancel

logger = logging.getLogger(__name__)


@transaction.atomic
def device_remove_by_admin(*, app: App, device_id: Any, actor: User) -> None:
    """Remove one of the app's devices; a device of another app is a 404."""
    try:
        device = Device.objects.select_for_update().get(pk=device_id, app=app)
    except (Device.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such device.") from None
    detail = {"device_id": str(device.id), "platform": device.platform, "label": device.label}
    device.delete()
    audit_record(app=app, actor=actor, action="device.remove", **detail)
    logger.info("device %s removed from app %s by an admin", device_id, app.pk)


def webhook_secret_reveal(*, app: App, actor: User) -> str:
    """Return the app's webhook secret, recording who looked at it."""
    secret = push_config_for(app).webhook_secret
    if secret:
        audit_record(app=app, actor=actor, action="webhook_secret.reveal")
    return secret


def webhook_secret_read(*, config: PushConfig, actor: Any) -> None:
    """Record that an API answer showed the webhook secret to `actor`."""
    if config.webhook_secret:
        audit_record(app=config.app, actor=actor, action="webhook_secret.read", via="api")


@transaction.atomic
def notification_send_test(
    *,
    app: App,
    actor: User,
    email: str,
    title: str,
    body: str,
    device: uuid.UUID | None = None,
    send_at: datetime | None = None,
) -> uuid.UUID:
    """Send (or schedule for `send_at`) one test notification to the enrolled user with
    `email` (to all their devices, or to `device` only); return its id."""
    user = User.objects.filter(email__iexact=email.strip()).first()
    if user is None:
        raise InvalidInput({"email": ["No Keymaster user has this email address."]})
    if not user_is_enrolled(app, user):
        raise InvalidInput({"email": [f"{user.email} is not enrolled in {app.name}."]})
    if device and not Device.objects.filter(pk=device, app=app, user=user).exists():
        raise InvalidInput({"device": [f"That device is not one of {user.email}'s in {app.name}."]})
    ids, _ = notifications_send(
        app=app,
        drafts=[
            NotificationDraft(user_id=user.pk, title=title, body=body, data={}, send_at=send_at)
        ],
        only_devices=frozenset([device]) if device else None,
    )
    detail = {"notification_id": str(ids[0]), "to": user.email}
    if device:
        detail["device_id"] = str(device)
    if send_at:
        detail["send_at"] = send_at.isoformat()
    audit_record(app=app, actor=actor, action="notification.test_send", **detail)
    return ids[0]


def notification_cancel_by_admin(*, app: App, notification_id: Any, actor: User) -> None:
    """Cancel one of the app's notifications not yet handed to a provider (else NotCancelable)."""
    notification_cancel(app=app, notification_id=notification_id)
    audit_record(
        app=app, actor=actor, action="notification.cancel", notification_id=str(notification_id)
    )


def broadcast_cancel_by_admin(*, app: App, broadcast_id: Any, actor: User) -> None:
    """Cancel one of the app's broadcasts: the fan-out stops, unsent notifications end."""
    broadcast = broadcast_cancel(app=app, broadcast_id=broadcast_id)
    audit_record(app=app, actor=actor, action="broadcast.cancel", broadcast_id=str(broadcast.pk))
