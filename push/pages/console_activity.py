"""The Console's lists: Devices, Notifications (with the test send), Receipts and Audit."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from keymaster.errors import InvalidInput, KeymasterError
from push.forms import (
    AuditFilterForm,
    DeviceFilterForm,
    NotificationFilterForm,
    ReceiptFilterForm,
    SendTestForm,
    add_service_errors,
)
from push.pages.access import ConsoleView
from push.pages.flow import form_failed, form_for_get, list_context, redirect_back, redirect_to
from push.selectors import (
    audit_actions_of_app,
    console_audit_events,
    console_devices,
    console_notifications,
    console_receipts,
    device_counts_by_platform,
    device_of_app,
    devices_going_stale,
    notification_detail,
    notification_of_app,
    receipt_of_app,
    with_user_emails,
)
from push.services.app_admin import device_remove_by_admin, notification_send_test
from push.services.config import push_config_for
from push.services.redelivery import receipt_redeliver


class DevicesTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """List the app's devices by platform and user email, a page at a time."""
        filters = DeviceFilterForm(request.GET, auto_id="filter_%s")
        devices = console_devices(self.app, **filters.filters())
        context = list_context(request, self.app, "devices", filters, devices)
        context["platform_counts"] = device_counts_by_platform(self.app)
        context["going_stale"] = devices_going_stale(app=self.app)
        return render(request, "push/tab_devices.html", context)


class NotificationsTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """List the app's notifications with their filters, and offer a test send."""
        filters = NotificationFilterForm(request.GET, auto_id="filter_%s")
        notifications = console_notifications(self.app, **filters.filters())
        context = list_context(request, self.app, "notifications", filters, notifications)
        with_user_emails(context["page"].object_list)
        context["config"] = push_config_for(self.app)
        context.update(_test_send_context(request, self.app))
        return render(request, "push/tab_notifications.html", context)


def _test_send_context(request: HttpRequest, app: Any) -> dict:
    # "Send a test" on a device's row comes here with ?test_device=<id>: to that device only.
    device = device_of_app(app, request.GET.get("test_device"))
    initial = {"email": device.user.email, "device": device.id} if device else {}
    form = form_for_get(request, "test", SendTestForm, initial=initial, auto_id="test_%s")
    if device is None and form.is_bound:
        device = device_of_app(app, form["device"].value())
    return {"test_form": form, "test_device": device}


class NotificationPageView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str, notification_id: str) -> HttpResponse:
        """Show one notification: its content, each device's outcome and its receipts."""
        detail = notification_detail(self.app, notification_id)
        context = {"app": self.app, "tab": "notifications", "detail": detail}
        return render(request, "push/notification.html", context)


class NotificationFragmentView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str, notification_id: str) -> HttpResponse:
        """Render one notification and its deliveries (the test-send result polls this)."""
        notification = notification_of_app(self.app, notification_id)
        return render(request, "push/_notification.html", {"n": notification, "app": self.app})


class SendTestView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Send a test notification, then show its page (a reload does not send again)."""
        form = SendTestForm(request.POST, auto_id="test_%s")
        if form.is_valid():
            try:
                sent = notification_send_test(app=self.app, actor=request.user, **form.cleaned_data)
            except InvalidInput as exc:
                add_service_errors(form, exc)
            except KeymasterError as exc:  # push is off, or the quota is used up
                form.add_error(None, exc.message)
        if not form.is_valid():
            form_failed(request, "test", form)
            return redirect_to("console-notifications", self.app, "test-send")
        scheduled = form.cleaned_data["send_at"]
        messages.success(
            request,
            f"Test notification scheduled for {scheduled:%Y-%m-%d %H:%M} UTC."
            if scheduled
            else "Test notification sent.",
        )
        return redirect("console-notification-page", self.app.pk, sent)


class ReceiptsTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """List the receipts POSTed to the webhook, with each attempt."""
        filters = ReceiptFilterForm(request.GET, auto_id="filter_%s")
        receipts = console_receipts(self.app, **filters.filters())
        context = list_context(request, self.app, "receipts", filters, receipts)
        context["config"] = push_config_for(self.app)
        return render(request, "push/tab_receipts.html", context)


class AuditTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """List who changed what in the app, by actor and action."""
        actions = audit_actions_of_app(self.app)
        filters = AuditFilterForm(request.GET, actions=actions, auto_id="filter_%s")
        events = console_audit_events(self.app, **filters.filters())
        context = list_context(request, self.app, "audit", filters, events)
        return render(request, "push/tab_audit.html", context)


class DeviceRemoveView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, device_id: str) -> HttpResponse:
        """Remove one of the app's devices."""
        device_remove_by_admin(app=self.app, device_id=device_id, actor=request.user)
        messages.success(request, "Device removed. It will receive no more notifications.")
        return redirect("console-devices", self.app.pk)


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
        return redirect_back(request, self.app, "console-receipts")
