"""The pages: the front door, the Account page, the service worker and the Console."""

from __future__ import annotations

from django.urls import path

from push.pages import account, console

_APP = "console/apps/<uuid:app_id>/"
_TAB = _APP + "notifications/"

urlpatterns = [
    path("", account.home, name="home"),
    path("account", account.AccountView.as_view(), name="account"),
    path(
        "account/revoke/<uuid:device_id>", account.DeviceRevokeView.as_view(), name="account-revoke"
    ),
    path("account/mute/<uuid:app_id>", account.AppMuteView.as_view(), name="account-mute"),
    path("sw.js", account.service_worker, name="service-worker"),
    path("console/", console.AppListView.as_view(), name="console"),
    path(_APP, console.AppOverviewView.as_view(), name="console-app"),
    path(_TAB, console.NotificationsTabView.as_view(), name="console-notifications"),
    path(_TAB + "enabled", console.PushEnabledView.as_view(), name="console-push-enabled"),
    path(_TAB + "settings", console.PushSettingsView.as_view(), name="console-push-settings"),
    path(
        _TAB + "webhook-secret/reveal",
        console.WebhookSecretRevealView.as_view(),
        name="console-secret-reveal",
    ),
    path(
        _TAB + "webhook-secret/rotate",
        console.WebhookSecretRotateView.as_view(),
        name="console-secret-rotate",
    ),
    path(_TAB + "fcm", console.ServiceAccountView.as_view(), name="console-fcm"),
    path(_TAB + "test", console.SendTestView.as_view(), name="console-test-send"),
    path(
        _TAB + "sent/<uuid:notification_id>",
        console.NotificationFragmentView.as_view(),
        name="console-notification",
    ),
    path(
        _TAB + "devices/<uuid:device_id>/remove",
        console.DeviceRemoveView.as_view(),
        name="console-device-remove",
    ),
    path(
        _TAB + "receipts/<int:receipt_id>/redeliver",
        console.ReceiptRedeliverView.as_view(),
        name="console-receipt-redeliver",
    ),
]
