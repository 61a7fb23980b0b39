"""The Console's Scheduled tab: sends not yet due and broadcasts, each with a Cancel button."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from keymaster.errors import Conflict
from push.pages.access import ConsoleView
from push.pages.flow import redirect_back
from push.selectors import with_user_emails
from push.selectors_scheduling import (
    broadcast_summary,
    broadcasts_of_app,
    scheduled_notifications_of_app,
)
from push.services.app_admin import broadcast_cancel_by_admin, notification_cancel_by_admin
from push.services.broadcasts import broadcast_for_app


class ScheduledTabView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """List the app's notifications not yet due and its latest broadcasts with counts."""
        scheduled = with_user_emails(list(scheduled_notifications_of_app(self.app)))
        broadcasts = broadcasts_of_app(self.app)
        for broadcast in broadcasts:
            broadcast["status_label"] = broadcast["status"].replace("_", " ").capitalize()
        context = {
            "app": self.app,
            "tab": "scheduled",
            "scheduled": scheduled,
            "broadcasts": broadcasts,
        }
        return render(request, "push/tab_scheduled.html", context)


class BroadcastCountsView(ConsoleView):
    def get(self, request: HttpRequest, app_id: str, broadcast_id: str) -> HttpResponse:
        """Answer a broadcast's status and counts in JSON (broadcasts.js polls this)."""
        summary = broadcast_summary(broadcast_for_app(app=self.app, broadcast_id=broadcast_id))
        return JsonResponse({"status": summary["status"], "counts": summary["counts"]})


class NotificationCancelView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, notification_id: str) -> HttpResponse:
        """Cancel a notification not yet handed to a provider (else say why not)."""
        try:
            notification_cancel_by_admin(
                app=self.app, notification_id=notification_id, actor=request.user
            )
        except Conflict as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Notification canceled: it will not be sent.")
        return redirect_back(request, self.app, "console-scheduled")


class BroadcastCancelView(ConsoleView):
    def post(self, request: HttpRequest, app_id: str, broadcast_id: str) -> HttpResponse:
        """Cancel a broadcast: its fan-out stops and its unsent notifications are canceled."""
        broadcast_cancel_by_admin(app=self.app, broadcast_id=broadcast_id, actor=request.user)
        messages.success(request, "Broadcast canceled: what was not yet sent will not be.")
        return redirect_back(request, self.app, "console-scheduled")
