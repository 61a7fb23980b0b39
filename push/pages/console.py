"""The Console: the list of apps, creating one, and an app's Overview (rename, client secret)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from push.forms import AppNameForm
from push.pages.access import ConsoleView, StaffConsoleView
from push.pages.chart import outcome_chart
from push.pages.flow import form_failed, form_for_get, show_once, take_once
from push.pages.quota import quota_usage
from push.selectors import app_admins, console_apps, delivery_outcomes_by_day, device_count
from push.services.apps import app_client_secret_rotate, app_create_by_admin, app_rename
from push.services.config import push_config_for


class AppListView(ConsoleView):
    def get(self, request: HttpRequest) -> HttpResponse:
        """List the apps this admin may see (staff: every app, and a form to create one)."""
        form = form_for_get(request, "app-create", AppNameForm, auto_id="create_%s")
        context = {"apps": console_apps(request.user), "create_form": form}
        return render(request, "push/app_list.html", context)


class AppCreateView(StaffConsoleView):
    def post(self, request: HttpRequest) -> HttpResponse:
        """Create an app and show its client secret once on its Overview."""
        form = AppNameForm(request.POST, auto_id="create_%s")
        if not form.is_valid():
            form_failed(request, "app-create", form)
            return redirect("/console/#create-app")
        app, secret = app_create_by_admin(name=form.cleaned_data["name"], actor=request.user)
        show_once(request, f"client-secret-{app.pk}", secret)
        messages.success(request, f"{app.name} created. Copy its client secret now.")
        return redirect("console-app", app.pk)


class AppOverviewView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Show the app's identity, usage, and its name and client secret to manage."""
        config = push_config_for(self.app)
        initial = {"name": self.app.name}
        context = {
            "app": self.app,
            "tab": "overview",
            "config": config,
            "client_secret": take_once(request, f"client-secret-{self.app.pk}"),
            "rename_form": form_for_get(
                request, "rename", AppNameForm, initial=initial, auto_id="rename_%s"
            ),
            "quota": quota_usage(config),
            "chart": outcome_chart(delivery_outcomes_by_day(self.app)),
            "device_total": device_count(self.app),
            "enrolled_total": self.app.enrollments.count(),
            "admins": app_admins(self.app),
        }
        return render(request, "push/app_overview.html", context)


class AppRenameView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Rename the app."""
        form = AppNameForm(request.POST, auto_id="rename_%s")
        if not form.is_valid():
            form_failed(request, "rename", form)
            return redirect("console-app", self.app.pk)
        app_rename(app=self.app, name=form.cleaned_data["name"], actor=request.user)
        messages.success(request, "App renamed.")
        return redirect("console-app", self.app.pk)


class ClientSecretRotateView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Replace the client secret and show the new one once."""
        secret = app_client_secret_rotate(app=self.app, actor=request.user)
        show_once(request, f"client-secret-{self.app.pk}", secret)
        messages.success(
            request, "New client secret made: tokens issued with the old one stop working."
        )
        return redirect("console-app", self.app.pk)
