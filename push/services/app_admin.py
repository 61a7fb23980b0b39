"""What an app admin does from the Console that the API has no service for."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction

from accounts.models import App, User
from accounts.selectors import user_is_enrolled
from keymaster.errors import InvalidInput, NotFound
from push.models import Device, PushConfig
from push.services.audit import audit_record
from push.services.config import push_config_for
from push.services.notifications import NotificationDraft, notifications_send

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
    *, app: App, actor: User, email: str, title: str, body: str, device: uuid.UUID | None = None
) -> uuid.UUID:
    """Send one test notification to the enrolled user with `email` (to all their devices, or
    to `device` only); return its id."""
    user = User.objects.filter(email__iexact=email.strip()).first()
    if user is None:
        raise InvalidInput({"email": ["No Keymaster user has this email address."]})
    if not user_is_enrolled(app, user):
        raise InvalidInput({"email": [f"{user.email} is not enrolled in {app.name}."]})
    if device and not Device.objects.filter(pk=device, app=app, user=user).exists():
        raise InvalidInput({"device": [f"That device is not one of {user.email}'s in {app.name}."]})
    ids, _ = notifications_send(
        app=app,
        drafts=[NotificationDraft(user_id=user.pk, title=title, body=body, data={})],
        only_devices=frozenset([device]) if device else None,
    )
    detail = {"notification_id": str(ids[0]), "to": user.email}
    if device:
        detail["device_id"] = str(device)
    audit_record(app=app, actor=actor, action="notification.test_send", **detail)
    return ids[0]
