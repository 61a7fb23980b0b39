"""Keymaster's URLs: the API, the token endpoints, the pages, and the OpenAPI schema."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import api as accounts_api
from accounts import views as accounts_views
from accounts.oauth import oauth_token
from keymaster.errors import json_error
from keymaster.health import healthz, readyz
from keymaster.metrics import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("oauth/token", oauth_token, name="oauth-token"),
    path("auth/token", accounts_api.UserTokenView.as_view(), name="auth-token"),
    path("auth/token/refresh", accounts_api.UserTokenRefreshView.as_view(), name="auth-refresh"),
    path("auth/token/revoke", accounts_api.UserTokenRevokeView.as_view(), name="auth-revoke"),
    path("api/apps", accounts_api.AppListView.as_view(), name="api-apps"),
    path("api/apps/<uuid:app_id>", accounts_api.AppDetailView.as_view(), name="api-app"),
    path(
        "api/apps/<uuid:app_id>/rotate-secret",
        accounts_api.AppRotateSecretView.as_view(),
        name="api-app-rotate-secret",
    ),
    path(
        "api/apps/<uuid:app_id>/enrollments",
        accounts_api.EnrollmentListView.as_view(),
        name="api-enrollments",
    ),
    path(
        "api/apps/<uuid:app_id>/enrollments/<uuid:user_id>",
        accounts_api.EnrollmentDetailView.as_view(),
        name="api-enrollment",
    ),
    path(
        "api/apps/<uuid:app_id>/admins", accounts_api.AppAdminListView.as_view(), name="api-admins"
    ),
    path("api/invitations", accounts_api.InvitationListView.as_view(), name="api-invitations"),
    path(
        "api/invitations/<uuid:app_id>",
        accounts_api.InvitationDetailView.as_view(),
        name="api-invitation",
    ),
    path(
        "api/invitations/<uuid:app_id>/accept",
        accounts_api.InvitationAcceptView.as_view(),
        name="api-invitation-accept",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline one.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("", include("push.urls")),
    path("", include("push.page_urls")),
    path("login", accounts_views.LoginView.as_view(), name="login"),
    path("logout", accounts_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

# Pages answer errors in HTML; everything else is API and answers in the one JSON format.
_PAGE_PREFIXES = ("/login", "/logout", "/console", "/account", "/admin", "/static")


def _is_page(request: HttpRequest) -> bool:
    return request.path == "/" or (
        request.path.startswith(_PAGE_PREFIXES)
        and not request.path.startswith(("/account/devices", "/account/apps/"))
    )


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_page(request):
        return defaults.page_not_found(request, exception)
    return json_error(404, "not_found", "No such resource.")


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_page(request):
        return defaults.server_error(request)
    return json_error(500, "server_error", "Something went wrong on our side; it was logged.")
