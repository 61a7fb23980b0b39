"""Writes about users, apps, admins and enrollments."""

from __future__ import annotations

import secrets

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import App, AppAdmin, Enrollment, Invitation, User
from keymaster.errors import Conflict, InvalidInput, NotFound

# Prefixed so a leaked secret is recognisable by secret scanners.
SECRET_PREFIX = "kms_"


def _new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def user_create(*, email: str, password: str | None, is_staff: bool = False) -> User:
    """Create a user who logs in with `email` and `password`."""
    email = email.strip().lower()
    if User.objects.filter(email=email).exists():
        raise Conflict(f"A user with email {email} already exists.")
    return User.objects.create_user(email, password, is_staff=is_staff)


def user_by_email(email: str) -> User:
    try:
        return User.objects.get(email=email.strip().lower())
    except User.DoesNotExist:
        raise InvalidInput({"email": [f"No user has the email {email}."]}) from None


@transaction.atomic
def app_create(*, name: str, admin: User | None = None) -> tuple[App, str]:
    """Create an app; return it with its client secret, which is never shown again."""
    secret = _new_client_secret()
    app = App.objects.create(name=name.strip(), client_secret_hash=make_password(secret))
    if admin is not None:
        AppAdmin.objects.create(app=app, user=admin)
    return app, secret


def app_rotate_secret(*, app: App) -> str:
    """Replace the app's client secret; return the new one, shown this once."""
    secret = _new_client_secret()
    app.client_secret_hash = make_password(secret)
    app.secret_rotated_at = timezone.now()
    app.save(update_fields=["client_secret_hash", "secret_rotated_at"])
    return secret


def enrollment_add(*, app: App, user: User) -> tuple[Enrollment, bool]:
    """Enroll `user` in `app`; return the enrollment and whether it is new."""
    return Enrollment.objects.get_or_create(app=app, user=user)


def enrollment_remove(*, app: App, user_id: str) -> None:
    """Remove a user's enrollment from `app`."""
    deleted, _ = Enrollment.objects.filter(app=app, user_id=user_id).delete()
    if not deleted:
        raise NotFound("That user is not enrolled in this app.")


def app_admin_add(*, app: App, user: User) -> AppAdmin:
    """Make `user` an administrator of `app`."""
    try:
        with transaction.atomic():
            return AppAdmin.objects.create(app=app, user=user)
    except IntegrityError:
        return AppAdmin.objects.get(app=app, user=user)


def user_password_set(*, user: User, password: str) -> None:
    """Set a user's password; every token issued to them before stops working (accounts.tokens)."""
    user.set_password(password)
    user.save(update_fields=["password"])


def invitation_create(
    *, app: App, role: str, invited_by: User, email: str = "", user_id: str = ""
) -> None:
    """Invite an email address (or a user by id) to `app`; do the same whether or not it exists.

    Nothing is answered about the address: an unknown user_id is dropped silently, an unknown
    email waits for its person to sign up, and a person already in that role is left alone.
    """
    if user_id:
        email = User.objects.filter(pk=user_id).values_list("email", flat=True).first() or ""
        if not email:
            return
    email = email.strip().lower()
    present = AppAdmin if role == Invitation.Role.ADMIN else Enrollment
    if present.objects.filter(app=app, user__email=email).exists():
        return
    Invitation.objects.get_or_create(
        app=app, email=email, role=role, defaults={"invited_by": invited_by}
    )


def invitations_pending(user: User) -> list[Invitation]:
    """The invitations waiting for `user`'s email, oldest first."""
    return list(
        Invitation.objects.filter(email=user.email).select_related("app").order_by("created_at")
    )


@transaction.atomic
def invitation_accept(*, user: User, app_id: str, role: str | None = None) -> list[str]:
    """Accept `user`'s invitations to the app (of `role`, or all); return the roles taken up."""
    invitations = Invitation.objects.select_for_update().filter(email=user.email, app_id=app_id)
    if role is not None:
        invitations = invitations.filter(role=role)
    taken = []
    for invitation in invitations:
        if invitation.role == Invitation.Role.ADMIN:
            AppAdmin.objects.get_or_create(app_id=invitation.app_id, user=user)
        else:
            Enrollment.objects.get_or_create(app_id=invitation.app_id, user=user)
        taken.append(invitation.role)
        invitation.delete()
    return sorted(taken)


def invitation_decline(*, user: User, app_id: str) -> None:
    """Decline `user`'s invitations to the app."""
    deleted, _ = Invitation.objects.filter(email=user.email, app_id=app_id).delete()
    if not deleted:
        raise NotFound("You have no invitation to that app.")


def enrollment_mute(*, user: User, app_id: object, muted: bool) -> Enrollment:
    """Mute (or unmute) an app for one of its enrolled users; 404 if not enrolled in it."""
    try:
        enrollment = Enrollment.objects.get(user=user, app_id=app_id)
    except (Enrollment.DoesNotExist, ValueError, TypeError):
        raise NotFound("You are not enrolled in that app.") from None
    if enrollment.muted != muted:
        enrollment.muted = muted
        enrollment.save(update_fields=["muted"])
    return enrollment
