"""The pages: the front door, the Account page, the service worker and the Console."""

from __future__ import annotations

from django.urls import path

from push.pages import (
    account,
    console,
    console_activity,
    console_scheduled,
    console_settings,
    console_users,
)

_APP = "console/apps/<uuid:app_id>/"
_SETTINGS = _APP + "settings/"
_NOTIFICATIONS = _APP + "notifications/"
_USERS = _APP + "users/"

urlpatterns = [
    path("", account.home, name="home"),
    path("account", account.AccountView.as_view(), name="account"),
    path(
        "account/revoke/<uuid:device_id>", account.DeviceRevokeView.as_view(), name="account-revoke"
    ),
    path("account/password", account.PasswordChangeView.as_view(), name="account-password"),
    path("account/mute/<uuid:app_id>", account.AppMuteView.as_view(), name="account-mute"),
    path(
        "account/invitations/<uuid:app_id>/accept",
        account.InvitationAcceptView.as_view(),
        name="account-invitation-accept",
    ),
    path(
        "account/invitations/<uuid:app_id>/decline",
        account.InvitationDeclineView.as_view(),
        name="account-invitation-decline",
    ),
    path("sw.js", account.service_worker, name="service-worker"),
    path("console/", console.AppListView.as_view(), name="console"),
    path("console/apps/new", console.AppCreateView.as_view(), name="console-app-create"),
    path(_APP, console.AppOverviewView.as_view(), name="console-app"),
    path(_APP + "rename", console.AppRenameView.as_view(), name="console-app-rename"),
    path(
        _APP + "client-secret/rotate",
        console.ClientSecretRotateView.as_view(),
        name="console-client-secret-rotate",
    ),
    # Settings
    path(_SETTINGS, console_settings.SettingsTabView.as_view(), name="console-settings"),
    path(
        _SETTINGS + "enabled",
        console_settings.PushEnabledView.as_view(),
        name="console-push-enabled",
    ),
    path(
        _SETTINGS + "save",
        console_settings.PushSettingsView.as_view(),
        name="console-push-settings",
    ),
    path(
        _SETTINGS + "webhook-secret/reveal",
        console_settings.WebhookSecretRevealView.as_view(),
        name="console-secret-reveal",
    ),
    path(
        _SETTINGS + "webhook-secret/rotate",
        console_settings.WebhookSecretRotateView.as_view(),
        name="console-secret-rotate",
    ),
    path(_SETTINGS + "fcm", console_settings.ServiceAccountView.as_view(), name="console-fcm"),
    # Devices
    path(_APP + "devices/", console_activity.DevicesTabView.as_view(), name="console-devices"),
    path(
        _APP + "devices/<uuid:device_id>/remove",
        console_activity.DeviceRemoveView.as_view(),
        name="console-device-remove",
    ),
    # Notifications
    path(
        _NOTIFICATIONS,
        console_activity.NotificationsTabView.as_view(),
        name="console-notifications",
    ),
    path(
        _NOTIFICATIONS + "test", console_activity.SendTestView.as_view(), name="console-test-send"
    ),
    path(
        _NOTIFICATIONS + "<uuid:notification_id>/",
        console_activity.NotificationPageView.as_view(),
        name="console-notification-page",
    ),
    path(
        _NOTIFICATIONS + "<uuid:notification_id>/status",
        console_activity.NotificationFragmentView.as_view(),
        name="console-notification",
    ),
    path(
        _NOTIFICATIONS + "<uuid:notification_id>/cancel",
        console_scheduled.NotificationCancelView.as_view(),
        name="console-notification-cancel",
    ),
    # Scheduled sends and broadcasts
    path(
        _APP + "scheduled/", console_scheduled.ScheduledTabView.as_view(), name="console-scheduled"
    ),
    path(
        _APP + "broadcasts/<uuid:broadcast_id>/counts",
        console_scheduled.BroadcastCountsView.as_view(),
        name="console-broadcast-counts",
    ),
    path(
        _APP + "broadcasts/<uuid:broadcast_id>/cancel",
        console_scheduled.BroadcastCancelView.as_view(),
        name="console-broadcast-cancel",
    ),
    # Receipts
    path(_APP + "receipts/", console_activity.ReceiptsTabView.as_view(), name="console-receipts"),
    path(
        _APP + "receipts/<int:receipt_id>/redeliver",
        console_activity.ReceiptRedeliverView.as_view(),
        name="console-receipt-redeliver",
    ),
    # Users
    path(_USERS, console_users.UsersTabView.as_view(), name="console-users"),
    path(_USERS + "enroll", console_users.EnrollView.as_view(), name="console-enroll"),
    path(
        _USERS + "<uuid:user_id>/unenroll",
        console_users.EnrollmentRemoveView.as_view(),
        name="console-unenroll",
    ),
    path(
        _USERS + "invitations/<int:invitation_id>/revoke",
        console_users.InvitationRevokeView.as_view(),
        name="console-invitation-revoke",
    ),
    path(_USERS + "admins/add", console_users.AdminAddView.as_view(), name="console-admin-add"),
    path(
        _USERS + "admins/<uuid:user_id>/remove",
        console_users.AdminRemoveView.as_view(),
        name="console-admin-remove",
    ),
    # Audit
    path(_APP + "audit/", console_activity.AuditTabView.as_view(), name="console-audit"),
]
