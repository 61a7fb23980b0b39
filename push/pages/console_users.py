"""The Console's Users tab: who is enrolled in the app and who administers it."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.selectors import app_is_administered_by
from push.forms import AdminAddForm, EnrollForm, UserFilterForm
from push.pages.access import ConsoleView
from push.pages.flow import form_failed, form_for_get, page_of, query_without_page
from push.selectors import app_admins, console_enrollments
from push.services.apps import (
    app_admin_add_by_email,
    app_admin_remove,
    enrollment_remove_by_admin,
    enrollments_add_by_email,
)

# What the page says after an enroll or an admin add. The same words whether or not an address
# has an account, so an admin cannot probe who uses Keymaster (the cross-tenant lookup rule).
ENROLLED_MESSAGE = "Done: each address that has a Keymaster account is now enrolled in {app}."
ADMIN_ADDED_MESSAGE = "Done: {email} is now an admin of {app} if the address has an account."


def _users(app_id: object, anchor: str = "") -> HttpResponse:
    return redirect(reverse("console-users", args=[app_id]) + (f"#{anchor}" if anchor else ""))


class UsersTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """List the app's enrolled users and admins, with forms to add and remove them."""
        filters = UserFilterForm(request.GET, auto_id="filter_%s")
        context = {
            "app": self.app,
            "tab": "users",
            "filter_form": filters,
            "filtered": bool(filters.filters()),
            "page": page_of(request, console_enrollments(self.app, **filters.filters())),
            "query": query_without_page(request),
            "admins": app_admins(self.app),
            "enroll_form": form_for_get(request, "enroll", EnrollForm, auto_id="enroll_%s"),
            "admin_form": form_for_get(request, "admin", AdminAddForm, auto_id="admin_%s"),
        }
        return render(request, "push/tab_users.html", context)


class EnrollView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Enroll one or many people by email."""
        form = EnrollForm(request.POST, auto_id="enroll_%s")
        if not form.is_valid():
            form_failed(request, "enroll", form)
            return _users(self.app.pk, "enroll")
        emails = form.cleaned_data["emails"]
        enrollments_add_by_email(app=self.app, emails=emails, actor=request.user)
        messages.success(request, ENROLLED_MESSAGE.format(app=self.app.name))
        return _users(self.app.pk)


class EnrollmentRemoveView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, user_id: str) -> HttpResponse:
        """Remove one enrollment."""
        enrollment_remove_by_admin(app=self.app, user_id=user_id, actor=request.user)
        messages.success(request, "Enrollment removed: the app can no longer send to them.")
        return _users(self.app.pk)


class AdminAddView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Make someone an admin of the app, by email."""
        form = AdminAddForm(request.POST, auto_id="admin_%s")
        if not form.is_valid():
            form_failed(request, "admin", form)
            return _users(self.app.pk, "admins")
        email = form.cleaned_data["email"]
        app_admin_add_by_email(app=self.app, email=email, actor=request.user)
        messages.success(request, ADMIN_ADDED_MESSAGE.format(email=email, app=self.app.name))
        return _users(self.app.pk, "admins")


class AdminRemoveView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, user_id: str) -> HttpResponse:
        """Remove one of the app's admins (removing yourself leaves you at the app list)."""
        app_admin_remove(app=self.app, user_id=user_id, actor=request.user)
        messages.success(request, "Admin removed.")
        if not app_is_administered_by(self.app, request.user):
            return redirect("console")
        return _users(self.app.pk, "admins")
