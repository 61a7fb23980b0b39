"""An app's push config: enabling, provisioning keys and secrets, webhook and quota."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import App
from keymaster.errors import InvalidInput
from push.cors import origins_validate
from push.models import PushConfig
from push.outbound import OutboundPolicy, OutboundRefused
from push.services.audit import audit_record
from push.transports.service_account import ServiceAccountRefused, service_account_check
from push.transports.webpush import VapidKey

_UNSET: Any = object()
# How long a replaced webhook secret still signs receipts, so receivers can switch unhurried.
WEBHOOK_SECRET_OVERLAP = timedelta(hours=24)


def webhook_secret_new() -> str:
    """Return a new webhook secret: ``whsec_`` + base64 of 32 random bytes (Standard Webhooks)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def push_config_for(app: App) -> PushConfig:
    """Return the app's push config, creating the disabled default on first use."""
    config, _ = PushConfig.objects.get_or_create(app=app)
    return config


def webhook_url_check(url: str) -> None:
    """Refuse a webhook URL Keymaster must not call (plain http, internal addresses)."""
    try:
        OutboundPolicy.from_settings().check_url(url, resolve=True, unresolvable_ok=True)
    except OutboundRefused as exc:
        raise InvalidInput({"webhook_url": [f"Not allowed: {exc.reason}."]}) from None


@transaction.atomic
def push_config_update(
    *,
    app: App,
    actor: Any,
    enabled: bool | None = None,
    webhook_url: str | None = _UNSET,
    daily_quota: int | None = None,
    allowed_origins: list[str] | None = None,
    track_opens: bool | None = None,
) -> PushConfig:
    """Change an app's push config; the first enable provisions a VAPID key and webhook secret."""
    config = PushConfig.objects.select_for_update().get(pk=push_config_for(app).pk)
    changes: dict[str, Any] = {}
    if webhook_url is not _UNSET and (webhook_url or "") != config.webhook_url:
        if webhook_url:
            webhook_url_check(webhook_url)
        config.webhook_url = webhook_url or ""
        # A new URL is a new chance: a 410 from the old one no longer stands.
        config.webhook_disabled_at, config.webhook_disabled_reason = None, ""
        changes["webhook_url"] = config.webhook_url
    if daily_quota is not None and daily_quota != config.daily_quota:
        config.daily_quota = daily_quota
        changes["daily_quota"] = daily_quota
    if allowed_origins is not None:
        origins = origins_validate(allowed_origins)
        if origins != config.allowed_origins:
            config.allowed_origins = changes["allowed_origins"] = origins
    if track_opens is not None and track_opens != config.track_opens:
        config.track_opens = changes["track_opens"] = track_opens
    if enabled is not None and enabled != config.enabled:
        config.enabled = enabled
        changes["enabled"] = enabled
        if enabled and not config.is_provisioned:
            _provision(config)
            changes["provisioned"] = True
    if changes:
        config.save()
        audit_record(app=app, actor=actor, action="config.update", **changes)
    return config


def _provision(config: PushConfig) -> None:
    vapid = VapidKey.generate(settings.PUSH_VAPID_SUBJECT)
    config.vapid_private_key = vapid.private_key_pem
    config.vapid_public_key = vapid.public_key_b64url
    config.webhook_secret = webhook_secret_new()


@transaction.atomic
def push_config_rotate_webhook_secret(*, app: App, actor: Any) -> PushConfig:
    """Replace the webhook secret; the old one signs beside it for WEBHOOK_SECRET_OVERLAP."""
    config = PushConfig.objects.select_for_update().get(pk=push_config_for(app).pk)
    if config.webhook_secret:
        config.webhook_secret_previous = config.webhook_secret
        config.webhook_secret_previous_until = timezone.now() + WEBHOOK_SECRET_OVERLAP
    config.webhook_secret = webhook_secret_new()
    config.save(
        update_fields=[
            "webhook_secret",
            "webhook_secret_previous",
            "webhook_secret_previous_until",
            "updated_at",
        ]
    )
    audit_record(app=app, actor=actor, action="webhook_secret.rotate")
    return config


def push_config_set_fcm_service_account(
    *, app: App, actor: Any, service_account: str | None
) -> PushConfig:
    """Store (encrypted) or clear the app's own FCM service account."""
    config = push_config_for(app)
    if service_account:
        info = _service_account_parse(service_account)
        config.fcm_service_account = json.dumps(info)
        config.fcm_project_id, config.fcm_client_email = info["project_id"], info["client_email"]
    else:
        config.fcm_service_account, config.fcm_project_id, config.fcm_client_email = "", "", ""
    config.save()
    audit_record(
        app=app,
        actor=actor,
        action="fcm_service_account.set" if service_account else "fcm_service_account.clear",
        project_id=config.fcm_project_id,
        client_email=config.fcm_client_email,
    )
    return config


def _service_account_parse(raw: str) -> dict[str, Any]:
    try:
        info = json.loads(raw)
    except ValueError:
        raise InvalidInput({"service_account": ["Not valid JSON."]}) from None
    try:
        service_account_check(info, OutboundPolicy.from_settings())
    except ServiceAccountRefused as exc:
        raise InvalidInput({"service_account": [exc.reason]}) from None
    return info
