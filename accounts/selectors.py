"""Reads about users and apps: who may see and administer what."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import App, AppAdmin, Enrollment, Invitation, User


def app_is_administered_by(app: App, user: User) -> bool:
    """Return whether `user` administers `app` (staff administer every app)."""
    if user.is_staff:
        return True
    return AppAdmin.objects.filter(app=app, user=user).exists()


def user_is_admin(user: User) -> bool:
    """Return whether `user` may use the Console at all."""
    return user.is_staff or AppAdmin.objects.filter(user=user).exists()


def apps_administered_by(user: User) -> QuerySet[App]:
    """Return the apps `user` may administer."""
    if user.is_staff:
        return App.objects.all()
    return App.objects.filter(appadmin__user=user)


def user_is_enrolled(app: App, user: User) -> bool:
    return Enrollment.objects.filter(app=app, user=user).exists()


def invitations_of_app(app: App) -> QuerySet[Invitation]:
    """The app's pending invitations, newest first."""
    return Invitation.objects.filter(app=app).order_by("-created_at", "id")
