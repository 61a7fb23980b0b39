"""The audit trail of changes admins make to an app's push setup."""

from __future__ import annotations

from typing import Any

from accounts.models import App
from push.models import AuditEvent


def audit_record(*, app: App, actor: Any, action: str, **detail: Any) -> AuditEvent:
    """Record that `actor` did `action` to `app` (never pass a secret in `detail`)."""
    user = actor if getattr(actor, "is_authenticated", False) and hasattr(actor, "email") else None
    return AuditEvent.objects.create(app=app, actor=user, action=action, detail=detail)
