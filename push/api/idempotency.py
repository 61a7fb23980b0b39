"""`Idempotency-Key` on sends: a repeat within 24 hours replays the first answer, sends nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import App
from push.models import IdempotencyRecord
from push.services.errors import IdempotencyKeyReused

LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255


def _fingerprint(endpoint: str, payload: Any) -> str:
    canonical = json.dumps([endpoint, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(record: IdempotencyRecord, fingerprint: str) -> tuple[int, dict, bool]:
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request in the last 24 hours."
        )
    return record.response_status, record.response_body, True


def send_idempotently(
    *,
    app: App,
    key: str | None,
    endpoint: str,
    payload: Any,
    send: Callable[[], tuple[int, dict]],
) -> tuple[int, dict, bool]:
    """Run `send` once per (app, key); return (status, body, replayed)."""
    if not key:
        status, body = send()
        return status, body, False
    fingerprint = _fingerprint(endpoint, payload)
    IdempotencyRecord.objects.filter(
        app=app, key=key, created_at__lt=timezone.now() - LIFETIME
    ).delete()
    existing = IdempotencyRecord.objects.filter(app=app, key=key).first()
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        with transaction.atomic():
            # Claimed first: a concurrent twin blocks on the unique (app, key) index until this
            # commits, then replays this answer. If the send fails, the claim rolls back with it.
            record = IdempotencyRecord.objects.create(
                app=app,
                key=key,
                endpoint=endpoint,
                request_hash=fingerprint,
                response_status=0,
                response_body={},
            )
            status, body = send()
            record.response_status, record.response_body = status, body
            record.save(update_fields=["response_status", "response_body"])
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(app=app, key=key).first()
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    return status, body, False


def idempotency_prune() -> int:
    """Delete records older than 24 hours."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - LIFETIME).delete()
    return deleted
