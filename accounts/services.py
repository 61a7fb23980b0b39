"""Writes about users, apps, admins and enrollments."""

from __future__ import annotations

import secrets

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import App, AppAdmin, Enrollment, User
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
