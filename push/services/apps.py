"""Running an app (Console and /api/apps): create, rename, rotate, invite and admins, audited.

Enrolling people and adding admins by email are invitations (accounts.services.invitation_create,
the API's path too): the person holding the address accepts on their Account page. Nothing tells
the admin whether an address has an account (an admin must not learn who uses other apps); the
audit keeps what was asked. Operators enroll directly with `manage.py enroll`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from accounts.models import App, AppAdmin, Enrollment, Invitation, User
from accounts.services import (
    app_create,
    app_rotate_secret,
    invitation_accept,
    invitation_create,
)
from keymaster.errors import NotFound
from push.services.audit import audit_record

logger = logging.getLogger(__name__)


@transaction.atomic
def app_create_by_admin(*, name: str, actor: User, admin: User | None = None) -> tuple[App, str]:
    """Create an app (with `admin` as its first admin); return it and its secret, shown once."""
    app, secret = app_create(name=name, admin=admin)
    detail = {"admin": admin.email} if admin is not None else {}
    audit_record(app=app, actor=actor, action="app.create", name=app.name, **detail)
    logger.info("app %s created", app.pk)
    return app, secret


@transaction.atomic
def app_rename(*, app: App, name: str, actor: User) -> App:
    """Rename the app."""
    old = app.name
    app.name = name.strip()
    app.save(update_fields=["name"])
    audit_record(app=app, actor=actor, action="app.rename", old=old, new=app.name)
    return app


@transaction.atomic
def app_client_secret_rotate(*, app: App, actor: User) -> str:
    """Replace the app's client secret (older client tokens stop working); return it once."""
    secret = app_rotate_secret(app=app)
    audit_record(app=app, actor=actor, action="client_secret.rotate")
    return secret


@transaction.atomic
def invitations_send(*, app: App, emails: list[str], role: str, actor: User) -> None:
    """Invite each address to the app as a user or an admin (said the same way for all)."""
    emails = [email.strip().lower() for email in emails]
    for email in emails:
        invitation_create(app=app, role=role, invited_by=actor, email=email)
    audit_record(app=app, actor=actor, action="invitation.create", role=role, emails=emails)


@transaction.atomic
def invitation_revoke(*, app: App, invitation_id: Any, actor: User) -> None:
    """Withdraw one of the app's pending invitations."""
    try:
        invitation = Invitation.objects.select_for_update().get(pk=invitation_id, app=app)
    except (Invitation.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such invitation.") from None
    invitation.delete()
    detail = {"email": invitation.email, "role": invitation.role}
    audit_record(app=app, actor=actor, action="invitation.revoke", **detail)


@transaction.atomic
def enrollment_remove_by_admin(*, app: App, user_id: Any, actor: User) -> None:
    """Remove one enrollment of the app (its devices stay until they are removed)."""
    enrollment = Enrollment.objects.filter(app=app, user_id=user_id).select_related("user")
    found = enrollment.first()
    if found is None:
        raise NotFound("That user is not enrolled in this app.")
    found.delete()
    audit_record(app=app, actor=actor, action="enrollment.remove", email=found.user.email)


@transaction.atomic
def app_admin_remove(*, app: App, user_id: Any, actor: User) -> None:
    """Remove one of the app's admins."""
    admin = AppAdmin.objects.filter(app=app, user_id=user_id).select_related("user").first()
    if admin is None:
        raise NotFound("That person is not an admin of this app.")
    admin.delete()
    audit_record(app=app, actor=actor, action="admin.remove", email=admin.user.email)


@transaction.atomic
def app_invite(*, app: App, role: str, actor: User, email: str = "", user_id: str = "") -> None:
    """Invite a person (by email or user_id) to use or administer the app; audit what was asked."""
    invitation_create(app=app, role=role, invited_by=actor, email=email, user_id=user_id)
    asked = {"email": email.strip().lower()} if email else {"user_id": str(user_id)}
    action = "admin.invite" if role == Invitation.Role.ADMIN else "enrollment.invite"
    audit_record(app=app, actor=actor, action=action, **asked)


@transaction.atomic
def app_invitation_accept(*, user: User, app_id: Any) -> list[str]:
    """Accept `user`'s invitations to the app; audit the roles taken up (none: nothing)."""
    roles = invitation_accept(user=user, app_id=app_id)
    if roles:
        app = App.objects.get(app_id=app_id)
        audit_record(app=app, actor=user, action="invitation.accept", roles=roles)
    return roles
