"""The Account page (a person's own devices), the site's front door and its service worker."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views import View
from django.views.decorators.http import require_GET

from accounts.models import App
from accounts.selectors import user_is_admin
from accounts.services import (
    enrollment_mute,
    invitation_accept,
    invitation_decline,
    invitations_pending,
)
from accounts.views import access_cookie_set
from keymaster.errors import NotFound
from push.forms import AccountPasswordForm
from push.pages.flow import form_failed, form_for_get
from push.selectors import browser_push_apps, devices_of_user_by_app, web_endpoint_digests
from push.services.devices import device_remove

# The same worker apps copy to their own sites (README "Web Push on your own site").
SERVICE_WORKER = Path(settings.BASE_DIR) / "static" / "keymaster" / "keymaster-sw.js"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Send people where they work: admins to the Console, everyone else to their Account."""
    if not request.user.is_authenticated:
        return redirect(settings.LOGIN_URL)
    return redirect("/console/" if user_is_admin(request.user) else "/account")


class AccountView(LoginRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        """List the person's devices by app, and offer to register this browser."""
        groups = devices_of_user_by_app(request.user)
        digests = web_endpoint_digests(request.user)
        for group in groups:
            for device in group["devices"]:
                device.endpoint_digest = digests.get(device.id, "")
        context = {
            "groups": groups,
            "device_total": sum(len(group["devices"]) for group in groups),
            "push_apps": browser_push_apps(request.user),
            "invitations": invitations_pending(request.user),
            "password_form": form_for_get(
                request, "password", AccountPasswordForm, user=request.user, auto_id="password_%s"
            ),
        }
        response = render(request, "push/account.html", context)
        # The cookie `POST /push/subscribe` authenticates with lives only as long as an access
        # token, so each visit issues a fresh one.
        access_cookie_set(response, request.user)
        return response


class DeviceRevokeView(LoginRequiredMixin, View):
    def post(self, request: HttpRequest, device_id: str) -> HttpResponse:
        """Revoke one of the person's own devices (anyone else's is a 404)."""
        try:
            device_remove(device_id=device_id, caller=request.user)
        except NotFound:
            raise Http404("No such device.") from None
        messages.success(request, "Device revoked. It will receive no more notifications.")
        return redirect("account")


class PasswordChangeView(LoginRequiredMixin, View):
    def post(self, request: HttpRequest) -> HttpResponse:
        """Change the password (the old one is asked); every other session is signed out."""
        form = AccountPasswordForm(request.user, request.POST, auto_id="password_%s")
        if not form.is_valid():
            form_failed(request, "password", form)
            return redirect("/account#password")
        form.save()
        # Other sessions carry the old password's hash and are signed out on their next
        # request; this one is re-keyed to the new hash and stays signed in.
        update_session_auth_hash(request, form.user)
        messages.success(request, "Password changed. Your other sessions are signed out.")
        return redirect("/account#password")


class AppMuteView(LoginRequiredMixin, View):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Mute (`muted=1`) or unmute an app the person is enrolled in (else a 404)."""
        muted = request.POST.get("muted") == "1"
        try:
            enrollment = enrollment_mute(user=request.user, app_id=app_id, muted=muted)
        except NotFound:
            raise Http404("No such app.") from None
        name = enrollment.app.name
        messages.success(
            request, f"{name} is muted." if muted else f"Notifications from {name} are on again."
        )
        return redirect("account")


class InvitationAcceptView(LoginRequiredMixin, View):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Accept the person's invitations to an app: enrolled, or made an admin (else 404)."""
        roles = invitation_accept(user=request.user, app_id=app_id)
        if not roles:
            raise Http404("No such invitation.")
        app = App.objects.get(pk=app_id)
        joined = " and ".join("an admin" if role == "admin" else "enrolled" for role in roles)
        messages.success(request, f"You are now {joined} in {app.name}.")
        return redirect("/account#invitations")


class InvitationDeclineView(LoginRequiredMixin, View):
    def post(self, request: HttpRequest, app_id: str) -> HttpResponse:
        """Decline the person's invitations to an app (else 404)."""
        try:
            invitation_decline(user=request.user, app_id=app_id)
        except NotFound:
            raise Http404("No such invitation.") from None
        messages.success(request, "Invitation declined.")
        return redirect("/account#invitations")


@cache
def _service_worker_source() -> bytes:
    return SERVICE_WORKER.read_bytes()


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """Serve the service worker from the site root, so its scope covers every page."""
    response = HttpResponse(_service_worker_source(), content_type="text/javascript")
    response["Service-Worker-Allowed"] = "/"
    # Browsers check for a new worker on each registration; never let a cache answer that.
    response["Cache-Control"] = "no-cache"
    return response
