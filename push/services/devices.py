"""Registering, finding again and removing devices (FCM tokens and Web Push subscriptions)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import App, Invitation, User
from accounts.selectors import user_is_enrolled
from accounts.services import enrollment_add, invitation_accept
from accounts.tokens import AppClient
from keymaster.crypto import lookup_hmac
from keymaster.errors import InvalidInput, NotFound, TooManyRequests
from keymaster.ratelimit import Window, counter_take
from push.cors import origin_check
from push.models import Device, Platform, PushConfig, Transport
from push.outbound import OutboundPolicy
from push.services.errors import NotEnrolled, PushDisabled
from push.transports.webpush import SubscriptionInvalid, validate_subscription

logger = logging.getLogger(__name__)

# FCM registration tokens are opaque, but always printable ASCII without spaces, well under 4 KB.
_FCM_TOKEN = re.compile(r"[\x21-\x7e]{16,4096}")


def app_with_push_enabled(app_id: Any, origin: str | None = None) -> App:
    """Return the app whose push is enabled, or raise 403 (as the guide says).

    `origin`: the web page's origin of a cross-origin call, refused unless the app allows it.
    """
    try:
        config = PushConfig.objects.select_related("app").get(app_id=app_id)
    except (PushConfig.DoesNotExist, ValueError, TypeError):
        config = None
    if config is None or not config.enabled:
        if config is None and not App.objects.filter(app_id=app_id).exists():
            raise NotFound("No app has that app_id.", fields={"app_id": ["Unknown app."]})
        raise PushDisabled("Push notifications are not enabled for this app.")
    origin_check(config, origin)
    return config.app


def device_token_hmac(transport: str, token: str, key: str | None = None) -> str:
    """The HMAC a stored token is found again by (the unique key of a device in its app).

    For Web Push, of the endpoint alone: a browser that re-subscribes gets new keys, and keeps
    its device. `key` is a lookup key other than TOKEN_LOOKUP_KEY (rotation).
    """
    if transport == Transport.WEBPUSH:
        return lookup_hmac("webpush:" + json.loads(token)["endpoint"], key)
    return lookup_hmac("fcm:" + token, key)


def _device_rekey(app: App, transport: str, token: str, token_hmac: str) -> None:
    # While TOKEN_LOOKUP_KEY rotates, a token registered before is stored under an old key's
    # HMAC: move it to the current one, so re-registering finds it instead of adding a device.
    if not settings.TOKEN_LOOKUP_OLD_KEYS:
        return
    old = [device_token_hmac(transport, token, key) for key in settings.TOKEN_LOOKUP_OLD_KEYS]
    stale = Device.objects.filter(app=app, token_hmac__in=old).values_list("pk", flat=True)[:1]
    if not Device.objects.filter(app=app, token_hmac=token_hmac).exists():
        Device.objects.filter(pk__in=list(stale)).update(token_hmac=token_hmac)


def push_token_parse(platform: str, push_token: Any, field: str = "push_token") -> tuple[str, str]:
    """Return (transport, stored token) for a registration, or raise 400.

    `field` names the token in the request ("" when the body is the subscription itself).
    """
    is_subscription = isinstance(push_token, dict) or (
        isinstance(push_token, str) and push_token.lstrip().startswith("{")
    )
    if is_subscription:
        if platform != Platform.WEB:
            raise InvalidInput({"push_token": ["A Web Push subscription needs platform 'web'."]})
        try:
            subscription = validate_subscription(push_token, OutboundPolicy.from_settings())
        except SubscriptionInvalid as exc:
            name = f"{field}.{exc.field}" if field else exc.field
            raise InvalidInput({name: [exc.reason]}) from None
        return Transport.WEBPUSH, json.dumps(subscription)
    if not isinstance(push_token, str) or not _FCM_TOKEN.fullmatch(push_token):
        raise InvalidInput(
            {"push_token": ["Must be an FCM registration token or a Web Push subscription."]}
        )
    return Transport.FCM, push_token


def _registration_take(user: User) -> None:
    window = Window(f"register:{user.pk}", 3600, settings.PUSH_REGISTRATIONS_PER_HOUR)
    take = counter_take(window)
    if not take.allowed:
        raise TooManyRequests(
            f"At most {window.limit} device registrations per user per hour.",
            retry_after=take.reset_in,
        )


def device_register(
    *,
    user: User,
    app_id: Any,
    platform: str,
    push_token: Any,
    label: str = "",
    auto_enroll: bool = False,
    request_field: str = "push_token",
    origin: str | None = None,
) -> tuple[Device, bool]:
    """Register a device, or refresh the one with the same token; return it and if it is new.

    `origin`: the calling page's origin when it is another site (push.cors.cross_origin).
    """
    transport, token = push_token_parse(platform, push_token, request_field)
    app = app_with_push_enabled(app_id, origin)
    if auto_enroll:
        enrollment_add(app=app, user=user)
    elif not user_is_enrolled(app, user) and not invitation_accept(
        user=user, app_id=app.app_id, role=Invitation.Role.USER
    ):
        # Registering a device in an app one is invited to is accepting the invitation.
        raise NotEnrolled("You are not enrolled in this app.")
    _registration_take(user)
    token_hmac = device_token_hmac(transport, token)
    now = timezone.now()
    new_id = uuid.uuid4()
    with transaction.atomic():
        _device_rekey(app, transport, token, token_hmac)
        # One statement, so concurrent registrations of one token end in one device; a phone
        # that changed hands moves to its new owner.
        Device.objects.bulk_create(
            [
                Device(
                    id=new_id,
                    app=app,
                    user=user,
                    platform=platform,
                    transport=transport,
                    token=token,
                    token_hmac=token_hmac,
                    label=label[:200],
                    created_at=now,
                    last_seen_at=now,
                )
            ],
            update_conflicts=True,
            unique_fields=["app", "token_hmac"],
            update_fields=["user", "platform", "token", "label", "last_seen_at"],
        )
        device = Device.objects.get(app=app, token_hmac=token_hmac)
    # The upsert keeps the id of a row that was there: only the registration that inserted it
    # sees its own id, however many raced (an exists() check before it would let several
    # racers each answer 201).
    created = device.id == new_id
    logger.info(
        "device %s registered (%s, %s) for app %s",
        device.id,
        platform,
        transport,
        app.pk,
        extra={"provider": transport, "app_id": app.pk},
    )
    return device, created


def device_remove(*, device_id: Any, caller: Any) -> None:
    """Remove a device, by its owning app's client or by its own user; anyone else gets 404."""
    try:
        device = Device.objects.get(pk=device_id)
    except (Device.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such device.") from None
    if isinstance(caller, AppClient):
        allowed = caller.app.pk == device.app_id
    else:
        allowed = isinstance(caller, User) and caller.pk == device.user_id
    if not allowed:
        raise NotFound("No such device.")
    device.delete()
    logger.info("device %s removed", device_id)
