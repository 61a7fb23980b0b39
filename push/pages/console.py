"""The Console: the list of apps an admin may see, and each app's Overview and Notifications."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from keymaster.errors import InvalidInput, KeymasterError, NotFound
from push.forms import (
    DeviceFilterForm,
    PushSettingsForm,
    SendTestForm,
    ServiceAccountForm,
    add_service_errors,
)
from push.models import PushConfig
from push.pages.access import ConsoleView
from push.pages.chart import outcome_chart
from push.selectors import device_count
from push.selectors_console import (
    audit_events_of_app,
    console_apps,
    console_devices,
    delivery_outcomes_by_day,
    device_counts_by_platform,
    notification_of_app,
    receipt_of_app,
    recent_notifications,
    recent_receipts,
)
from push.services.config import (
    push_config_for,
    push_config_rotate_webhook_secret,
    push_config_set_fcm_service_account,
    push_config_update,
)
from push.services.console import (
    device_remove_by_admin,
    notification_send_test,
    webhook_secret_reveal,
)
from push.services.notifications import notifications_today
from push.services.receipts import receipt_redeliver

TAB_TEMPLATE = "push/app_notifications.html"
DEVICES_PER_PAGE = 20
# What the next GET of the tab shows in full once: set by a POST, popped by the GET.
_REVEAL_KEY = "console.reveal.{app_id}"


class AppListView(ConsoleView):
    def get(self, request: HttpRequest) -> HttpResponse:
        """List the apps this admin may see."""
        return render(request, "push/app_list.html", {"apps": console_apps(request.user)})


class AppOverviewView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Show the app's identity and where its push setup stands."""
        context = {
            "app": self.app,
            "tab": "overview",
            "config": push_config_for(self.app),
            "device_total": device_count(self.app),
            "enrolled_total": self.app.enrollments.count(),
            "admins": self.app.admins.order_by("email"),
        }
        return render(request, "push/app_overview.html", context)


def _tab_url(app_id: Any, anchor: str = "", **query: str) -> str:
    url = reverse("console-notifications", args=[app_id])
    return url + (f"?{urlencode(query)}" if query else "") + (f"#{anchor}" if anchor else "")


def _tab_context(request: HttpRequest, app: Any, forms: dict[str, Form]) -> dict[str, Any]:
    config = push_config_for(app)
    device_filter = DeviceFilterForm(request.GET, auto_id="devices_%s")
    devices = console_devices(app, **device_filter.filters())
    # A POST that re-renders with errors leaves the one-time reveal for the next GET.
    key = _REVEAL_KEY.format(app_id=app.pk)
    reveal = request.session.pop(key, None) if request.method == "GET" else None
    return {
        "app": app,
        "tab": "notifications",
        "config": config,
        "reveal": reveal,
        "used_today": notifications_today(config),
        "chart": outcome_chart(delivery_outcomes_by_day(app)),
        "platform_counts": device_counts_by_platform(app),
        "device_filter": device_filter,
        "devices": Paginator(devices, DEVICES_PER_PAGE).get_page(request.GET.get("page")),
        "device_query": _device_query(device_filter),
        "notifications": recent_notifications(app),
        "receipts": recent_receipts(app),
        "audit_events": audit_events_of_app(app),
        "sent": _sent(app, request.GET.get("sent")),
        "settings_form": forms.get("settings") or _settings_form(config),
        "test_form": forms.get("test") or SendTestForm(auto_id="test_%s"),
        "fcm_form": forms.get("fcm") or ServiceAccountForm(auto_id="fcm_%s"),
    }


def _settings_form(config: PushConfig) -> PushSettingsForm:
    initial = {
        "webhook_url": config.webhook_url,
        "daily_quota": config.daily_quota,
        "allowed_origins": "\n".join(config.allowed_origins),
        "track_opens": config.track_opens,
    }
    return PushSettingsForm(initial=initial, auto_id="settings_%s")


def _device_query(device_filter: DeviceFilterForm) -> str:
    # Pagination links keep the filter.
    return urlencode({key: value for key, value in device_filter.filters().items() if value})


def _sent(app: Any, notification_id: str | None) -> Any:
    if not notification_id:
        return None
    try:
        return notification_of_app(app, notification_id)
    except NotFound:
        return None


def _tab_with_errors(request: HttpRequest, app: Any, **forms: Form) -> HttpResponse:
    return render(request, TAB_TEMPLATE, _tab_context(request, app, forms), status=400)


class NotificationsTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Show the app's push setup, usage, devices, recent activity and audit trail."""
        return render(request, TAB_TEMPLATE, _tab_context(request, self.app, {}))


class PushEnabledView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Switch push on or off; the first switch-on shows the new secret and key once."""
        enabled = request.POST.get("enabled") == "1"
        was_provisioned = push_config_for(self.app).is_provisioned
        config = push_config_update(app=self.app, actor=request.user, enabled=enabled)
        if config.is_provisioned and not was_provisioned:
            request.session[_REVEAL_KEY.format(app_id=self.app.pk)] = "provisioned"
        messages.success(request, f"Push notifications are {'on' if enabled else 'off'}.")
        return redirect(_tab_url(self.app.pk, "status"))


class PushSettingsView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Save the webhook URL and the daily quota, or show what is wrong with them."""
        form = PushSettingsForm(request.POST, auto_id="settings_%s")
        if form.is_valid():
            try:
                push_config_update(app=self.app, actor=request.user, **form.cleaned_data)
            except InvalidInput as exc:
                add_service_errors(form, exc)
        if not form.is_valid():
            return _tab_with_errors(request, self.app, settings=form)
        messages.success(request, "Settings saved.")
        return redirect(_tab_url(self.app.pk, "settings"))


class WebhookSecretRevealView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Show the webhook secret once (the look is audited)."""
        if webhook_secret_reveal(app=self.app, actor=request.user):
            request.session[_REVEAL_KEY.format(app_id=self.app.pk)] = "secret"
        return redirect(_tab_url(self.app.pk, "webhook-secret"))


class WebhookSecretRotateView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Replace the webhook secret and show the new one once."""
        push_config_rotate_webhook_secret(app=self.app, actor=request.user)
        request.session[_REVEAL_KEY.format(app_id=self.app.pk)] = "secret"
        messages.success(
            request, "New webhook secret made. Update your receiver to verify with it."
        )
        return redirect(_tab_url(self.app.pk, "webhook-secret"))


class ServiceAccountView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Upload the app's own FCM service account, or go back to Keymaster's."""
        if request.POST.get("clear"):
            push_config_set_fcm_service_account(
                app=self.app, actor=request.user, service_account=None
            )
            messages.success(request, "This app now sends through Keymaster's FCM project.")
            return redirect(_tab_url(self.app.pk, "fcm"))
        form = ServiceAccountForm(request.POST, request.FILES, auto_id="fcm_%s")
        if form.is_valid():
            try:
                push_config_set_fcm_service_account(
                    app=self.app, actor=request.user, service_account=form.cleaned_data["file"]
                )
            except InvalidInput as exc:
                add_service_errors(form, exc, {"service_account": "file"})
        if not form.is_valid():
            return _tab_with_errors(request, self.app, fcm=form)
        messages.success(request, "Service account saved; FCM sends now use it.")
        return redirect(_tab_url(self.app.pk, "fcm"))


class SendTestView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Send a test notification, then show it until it leaves the queue."""
        form = SendTestForm(request.POST, auto_id="test_%s")
        if not form.is_valid():
            return _tab_with_errors(request, self.app, test=form)
        try:
            sent = notification_send_test(app=self.app, actor=request.user, **form.cleaned_data)
        except InvalidInput as exc:
            add_service_errors(form, exc)
            return _tab_with_errors(request, self.app, test=form)
        except KeymasterError as exc:  # push is off, or the quota is used up: said above the form
            form.add_error(None, exc.message)
            return _tab_with_errors(request, self.app, test=form)
        return redirect(_tab_url(self.app.pk, "test-send", sent=str(sent)))


class NotificationFragmentView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str, notification_id: str) -> HttpResponse:
        """Render one notification and its deliveries (the test-send result polls this)."""
        notification = notification_of_app(self.app, notification_id)
        return render(request, "push/_notification.html", {"n": notification, "app": self.app})


class DeviceRemoveView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, device_id: str) -> HttpResponse:
        """Remove one of the app's devices."""
        device_remove_by_admin(app=self.app, device_id=device_id, actor=request.user)
        messages.success(request, "Device removed. It will receive no more notifications.")
        return redirect(_tab_url(self.app.pk, "devices"))


class ReceiptRedeliverView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, receipt_id: int) -> HttpResponse:
        """Queue a receipt to be POSTed to the webhook again (same webhook-id)."""
        receipt = receipt_of_app(self.app, receipt_id)
        try:
            receipt_redeliver(receipt=receipt, actor=request.user)
        except KeymasterError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Receipt queued for redelivery.")
        return redirect(_tab_url(self.app.pk, "receipts"))
