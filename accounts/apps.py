from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin

        from accounts import schema  # noqa: F401 - registers the OpenAPI security schemes
        from accounts.views import ThrottledAdminAuthenticationForm

        # /admin/login/ checks passwords too: it guesses under the same throttle.
        admin.site.login_form = ThrottledAdminAuthenticationForm
