from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import App, AppAdmin, Enrollment, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "is_staff", "is_active", "date_joined"]
    search_fields = ["email"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class AppAdminInline(admin.TabularInline):
    model = AppAdmin
    extra = 0
    raw_id_fields = ["user"]


@admin.register(App)
class AppModelAdmin(admin.ModelAdmin):
    list_display = ["name", "app_id", "created_at"]
    search_fields = ["name", "app_id"]
    # The hash is never useful to a person and the secret is never stored.
    exclude = ["client_secret_hash"]
    readonly_fields = ["app_id", "secret_rotated_at", "created_at"]
    inlines = [AppAdminInline]


@admin.register(AppAdmin)
class AppAdminAdmin(admin.ModelAdmin):
    list_display = ["app", "user", "created_at"]
    raw_id_fields = ["user"]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["app", "user", "created_at"]
    list_filter = ["app"]
    search_fields = ["user__email"]
    raw_id_fields = ["user"]
