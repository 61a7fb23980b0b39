"""The Console's Settings tab: the push switch, webhook and quota, webhook secret, FCM project."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from keymaster.errors import InvalidInput
from push.forms import PushSettingsForm, ServiceAccountForm, add_service_errors
from push.pages.access import ConsoleView
from push.pages.flow import form_failed, form_for_get, redirect_to, show_once, take_once
from push.pages.quota import quota_usage
from push.services.app_admin import webhook_secret_reveal
from push.services.config import (
    push_config_for,
    push_config_rotate_webhook_secret,
    push_config_set_fcm_service_account,
    push_config_update,
)


class SettingsTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Show the push switch, webhook, quota, allowed origins, webhook secret and FCM project."""
        config = push_config_for(self.app)
        initial = {
            "webhook_url": config.webhook_url,
            "daily_quota": config.daily_quota,
            "allowed_origins": "\n".join(config.allowed_origins),
            "track_opens": config.track_opens,
        }
        context = {
            "app": self.app,
            "tab": "settings",
            "config": config,
            "quota": quota_usage(config),
            "reveal": take_once(request, f"reveal-{self.app.pk}"),
            "settings_form": form_for_get(
                request, "settings", PushSettingsForm, initial=initial, auto_id="settings_%s"
            ),
            "fcm_form": form_for_get(request, "fcm", ServiceAccountForm, auto_id="fcm_%s"),
        }
        return render(request, "push/tab_settings.html", context)


class PushEnabledView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Switch push on or off; the first switch-on shows the new secret and key once."""
        enabled = request.POST.get("enabled") == "1"
        was_provisioned = push_config_for(self.app).is_provisioned
        config = push_config_update(app=self.app, actor=request.user, enabled=enabled)
        if config.is_provisioned and not was_provisioned:
            show_once(request, f"reveal-{self.app.pk}", "provisioned")
        messages.success(request, f"Push notifications are {'on' if enabled else 'off'}.")
        return redirect_to("console-settings", self.app, "status")


class PushSettingsView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Save webhook, quota, allowed origins and open tracking, or say what is wrong."""
        form = PushSettingsForm(request.POST, auto_id="settings_%s")
        if form.is_valid():
            try:
                push_config_update(app=self.app, actor=request.user, **form.cleaned_data)
            except InvalidInput as exc:
                add_service_errors(form, exc)
        if not form.is_valid():
            form_failed(request, "settings", form)
            return redirect_to("console-settings", self.app, "settings")
        messages.success(request, "Settings saved.")
        usage = quota_usage(push_config_for(self.app))
        if usage.used > usage.quota:
            messages.warning(
                request,
                f"{usage.used:,} notifications were already sent today, more than the new quota "
                f"of {usage.quota:,}: sends are refused until 00:00 UTC.",
            )
        return redirect_to("console-settings", self.app, "settings")


class WebhookSecretRevealView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Show the webhook secret once (the look is audited)."""
        if webhook_secret_reveal(app=self.app, actor=request.user):
            show_once(request, f"reveal-{self.app.pk}", "secret")
        return redirect_to("console-settings", self.app, "webhook-secret")


class WebhookSecretRotateView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Replace the webhook secret and show the new one once."""
        push_config_rotate_webhook_secret(app=self.app, actor=request.user)
        show_once(request, f"reveal-{self.app.pk}", "secret")
        messages.success(
            request, "New webhook secret made. Update your receiver to verify with it."
        )
        return redirect_to("console-settings", self.app, "webhook-secret")


class ServiceAccountView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Upload the app's own FCM service account, or go back to Keymaster's."""
        if request.POST.get("clear"):
            push_config_set_fcm_service_account(
                app=self.app, actor=request.user, service_account=None
            )
            messages.success(request, "This app now sends through Keymaster's FCM project.")
            return redirect_to("console-settings", self.app, "fcm")
        form = ServiceAccountForm(request.POST, request.FILES, auto_id="fcm_%s")
        if form.is_valid():
            try:
                push_config_set_fcm_service_account(
                    app=self.app, actor=request.user, service_account=form.cleaned_data["file"]
                )
            except InvalidInput as exc:
                add_service_errors(form, exc, {"service_account": "file"})
        if not form.is_valid():
            form_failed(request, "fcm", form)
            return redirect_to("console-settings", self.app, "fcm")
        messages.success(request, "Service account saved; FCM sends now use it.")
        return redirect_to("console-settings", self.app, "fcm")
