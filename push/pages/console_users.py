"""The Console's Users tab: who is enrolled in the app and who administers it."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import Invitation
from accounts.selectors import app_is_administered_by, invitations_of_app
from push.forms import AdminAddForm, EnrollForm, UserFilterForm
from push.pages.access import ConsoleView
from push.pages.flow import form_failed, form_for_get, list_context, redirect_to
from push.selectors import app_admins, console_enrollments
from push.services.apps import (
    app_admin_remove,
    enrollment_remove_by_admin,
    invitation_revoke,
    invitations_send,
)

# What the page says after an enroll or an admin add: the same words for every address, so an
# admin cannot probe who uses Keymaster (the cross-tenant lookup rule).
INVITED_MESSAGE = "Invitation sent to {emails}."


class UsersTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """List the app's enrolled users and admins, with forms to add and remove them."""
        filters = UserFilterForm(request.GET, auto_id="filter_%s")
        enrollments = console_enrollments(self.app, **filters.filters())
        context = list_context(request, self.app, "users", filters, enrollments)
        context.update(
            admins=app_admins(self.app),
            invitations=invitations_of_app(self.app),
            enroll_form=form_for_get(request, "enroll", EnrollForm, auto_id="enroll_%s"),
            admin_form=form_for_get(request, "admin", AdminAddForm, auto_id="admin_%s"),
        )
        return render(request, "push/tab_users.html", context)


class EnrollView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Invite one or many people by email to be enrolled (they accept on their Account)."""
        form = EnrollForm(request.POST, auto_id="enroll_%s")
        if not form.is_valid():
            form_failed(request, "enroll", form)
            return redirect_to("console-users", self.app, "enroll")
        emails = form.cleaned_data["emails"]
        invitations_send(app=self.app, emails=emails, role=Invitation.Role.USER, actor=request.user)
        messages.success(request, INVITED_MESSAGE.format(emails=", ".join(emails)))
        return redirect_to("console-users", self.app, "invitations")


class EnrollmentRemoveView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, user_id: str) -> HttpResponse:
        """Remove one enrollment."""
        enrollment_remove_by_admin(app=self.app, user_id=user_id, actor=request.user)
        messages.success(request, "Enrollment removed: the app can no longer send to them.")
        return redirect_to("console-users", self.app)


class AdminAddView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Invite someone by email to be an admin of the app (they accept on their Account)."""
        form = AdminAddForm(request.POST, auto_id="admin_%s")
        if not form.is_valid():
            form_failed(request, "admin", form)
            return redirect_to("console-users", self.app, "admins")
        email = form.cleaned_data["email"].strip().lower()
        role = Invitation.Role.ADMIN
        invitations_send(app=self.app, emails=[email], role=role, actor=request.user)
        messages.success(request, INVITED_MESSAGE.format(emails=email))
        return redirect_to("console-users", self.app, "invitations")


class InvitationRevokeView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, invitation_id: int) -> HttpResponse:
        """Withdraw a pending invitation."""
        invitation_revoke(app=self.app, invitation_id=invitation_id, actor=request.user)
        messages.success(request, "Invitation revoked.")
        return redirect_to("console-users", self.app, "invitations")


class AdminRemoveView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, user_id: str) -> HttpResponse:
        """Remove one of the app's admins (removing yourself leaves you at the app list)."""
        app_admin_remove(app=self.app, user_id=user_id, actor=request.user)
        messages.success(request, "Admin removed.")
        if not app_is_administered_by(self.app, request.user):
            return redirect("console")
        return redirect_to("console-users", self.app, "admins")
