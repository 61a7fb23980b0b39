"""Login and logout pages for the Console and the Account page (Django session + cookie)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.selectors import user_is_admin
from accounts.throttles import (
    client_address,
    guess_throttle_check,
    guess_throttle_fail,
    guess_throttle_succeed,
    user_subject,
)
from accounts.tokens import token_revoke, user_access_token_issue
from keymaster.errors import TooManyRequests


def access_cookie_set(response: HttpResponse, user: object) -> None:
    """Set the `access_token` cookie that `POST /push/subscribe` authenticates with."""
    response.set_cookie(
        settings.ACCESS_TOKEN_COOKIE,
        user_access_token_issue(user),
        max_age=int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=not settings.DEBUG,
    )


class ThrottledFormMixin:
    """A login form refusing to check a password once guessing is suspected (accounts.throttles)."""

    def clean(self) -> dict:
        subject = user_subject(self.cleaned_data.get("username") or "")
        address = client_address(self.request)
        try:
            guess_throttle_check(subject, address)
        except TooManyRequests as exc:
            raise ValidationError(
                "Too many failed sign-in attempts. Try again in %(minutes)s minutes.",
                params={"minutes": max(1, exc.retry_after // 60)},
                code="throttled",
            ) from None
        try:
            cleaned = super().clean()
        except ValidationError:
            guess_throttle_fail(subject, address)
            raise
        if self.get_user() is not None:
            guess_throttle_succeed(subject, address)
        return cleaned


class ThrottledAuthenticationForm(ThrottledFormMixin, AuthenticationForm):
    """The Console and Account page's login form."""


class ThrottledAdminAuthenticationForm(ThrottledFormMixin, AdminAuthenticationForm):
    """`/admin/login/`'s form: the same throttle as every other login."""


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        access_cookie_set(response, form.get_user())
        return response

    def get_default_redirect_url(self) -> str:
        return "/console/" if user_is_admin(self.request.user) else "/account"


class LogoutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        raw = request.COOKIES.get(settings.ACCESS_TOKEN_COOKIE)
        if raw:
            try:
                token_revoke(AccessToken(raw))  # a copy of the cookie dies with the session
            except TokenError:
                pass  # expired or not ours: nothing to revoke
        response = super().post(request, *args, **kwargs)
        response.delete_cookie(settings.ACCESS_TOKEN_COOKIE, samesite="Lax")
        return response
