"""Who may call what: scopes for app clients, administration for people."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import App, User
from accounts.selectors import app_is_administered_by
from accounts.tokens import SCOPE_PUSH_SEND, AppClient
from keymaster.errors import NotFound


class HasPushSendScope(BasePermission):
    """An app client whose token carries `push:send` (403 for a valid token without it)."""

    message = "This token lacks the push:send scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = request.user
        return isinstance(caller, AppClient) and SCOPE_PUSH_SEND in caller.scopes


class IsStaff(BasePermission):
    message = "Only Keymaster staff may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, User) and request.user.is_staff


def app_for_admin(app_id: Any, user: Any) -> App:
    """Return the app `user` administers, or raise 404 (not 403: do not reveal it exists)."""
    try:
        app = App.objects.get(app_id=app_id)
    except (App.DoesNotExist, ValueError, TypeError, ValidationError):
        raise NotFound("No such app.") from None
    if not isinstance(user, User) or not app_is_administered_by(app, user):
        raise NotFound("No such app.")
    return app
