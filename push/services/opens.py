"""Recording that a user opened a notification: by a Web Push open token, or by the app.

Only for apps that track opens (`PushConfig.track_opens`). Each delivery's `opened_at` is set
once: a token used again changes nothing and says so.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from accounts.models import User
from keymaster import metrics
from keymaster.errors import Conflict, Forbidden, NotFound
from push.models import Delivery, Notification, Platform, PushConfig
from push.open_tokens import open_token_read

logger = logging.getLogger(__name__)


class OpensNotTracked(Forbidden):
    code = "opens_not_tracked"


class AlreadyOpened(Conflict):
    code = "already_opened"


def _opens_tracked_check(app_id: Any) -> None:
    """Raise 403 opens_not_tracked unless the app tracks opens."""
    if not PushConfig.objects.filter(app_id=app_id, track_opens=True).exists():
        raise OpensNotTracked("This app does not track opens.")


def delivery_open_by_token(*, token: Any) -> None:
    """Record the open a Web Push open token names; raise 404 (no such token) or 409 (used)."""
    delivery_id = open_token_read(token)
    delivery = None
    if delivery_id is not None:  # a malformed token costs no query
        delivery = Delivery.objects.filter(pk=delivery_id).only("app_id").first()
    if delivery is None:
        raise NotFound("No such open token.", fields={"token": ["Unknown or malformed token."]})
    _opens_tracked_check(delivery.app_id)
    opened = Delivery.objects.filter(pk=delivery_id, opened_at__isnull=True).update(
        opened_at=timezone.now()
    )
    if not opened:
        raise AlreadyOpened("This notification's open was already recorded.")
    metrics.opens_recorded("token", opened)
    logger.info("delivery %s opened", delivery_id)


def notification_open(*, user: User, notification_id: Any) -> int:
    """Record that `user` opened one of their notifications on a phone; return deliveries marked.

    An app reports it with the notification_id FCM messages carry in `data`; the user's
    deliveries to phones that have no open yet are marked (a repeat marks none).
    """
    try:
        notification = Notification.objects.only("app_id").get(pk=notification_id, user_id=user.pk)
    except (Notification.DoesNotExist, ValueError, TypeError):
        raise NotFound(
            "No such notification.", fields={"notification_id": ["Not one of yours."]}
        ) from None
    _opens_tracked_check(notification.app_id)
    marked = (
        Delivery.objects.filter(notification=notification, opened_at__isnull=True)
        .exclude(platform=Platform.WEB)
        .update(opened_at=timezone.now())
    )
    metrics.opens_recorded("app", marked)
    logger.info("notification %s opened (%d deliveries)", notification_id, marked)
    return marked
