"""Who may open a Console page: signed-in admins, and for an app page only its admins."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import View

from accounts.models import App
from accounts.permissions import app_for_admin
from accounts.selectors import user_is_admin
from keymaster.errors import NotFound


class ConsoleView(LoginRequiredMixin, View):
    """A Console page: 403 for people who administer nothing, 404 for an app not theirs."""

    app: App

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not user_is_admin(request.user):
            return render(request, "push/forbidden.html", status=403)
        try:
            if "app_id" in kwargs:
                self.app = app_for_admin(kwargs["app_id"], request.user)
            return super().dispatch(request, *args, **kwargs)
        except NotFound as exc:
            # Pages answer in HTML: the API's NotFound becomes Django's 404 page.
            raise Http404(exc.message) from None


class StaffConsoleView(ConsoleView):
    """A Console action for Keymaster staff only (creating an app): 403 for anyone else."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and not request.user.is_staff:
            return render(request, "push/forbidden.html", {"staff_only": True}, status=403)
        return super().dispatch(request, *args, **kwargs)
