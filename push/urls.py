from __future__ import annotations

from django.urls import path

from push.api import account, broadcasts, config, devices, opens, send, topics

urlpatterns = [
    path("push/config/<uuid:app_id>", config.ConfigView.as_view(), name="push-config"),
    path(
        "push/config/<uuid:app_id>/rotate-webhook-secret",
        config.RotateWebhookSecretView.as_view(),
        name="push-rotate-webhook-secret",
    ),
    path("push/devices/register", devices.RegisterView.as_view(), name="push-register"),
    path("push/devices/<uuid:pk>", devices.DevicesView.as_view(), name="push-devices"),
    path("push/subscribe", devices.SubscribeView.as_view(), name="push-subscribe"),
    path("push/send", send.SendView.as_view(), name="push-send"),
    path("push/send/bulk", send.SendBulkView.as_view(), name="push-send-bulk"),
    path("push/send/batch", send.SendBatchView.as_view(), name="push-send-batch"),
    path(
        "push/notifications/<uuid:notification_id>",
        send.NotificationView.as_view(),
        name="push-notification",
    ),
    path("push/opened", opens.OpenedView.as_view(), name="push-opened"),
    path("account/devices", devices.AccountDevicesView.as_view(), name="account-devices"),
    path(
        "push/notifications/<uuid:notification_id>/cancel",
        send.NotificationCancelView.as_view(),
        name="push-notification-cancel",
    ),
    path("push/send/broadcast", broadcasts.BroadcastView.as_view(), name="push-send-broadcast"),
    path(
        "push/broadcasts/<uuid:broadcast_id>",
        broadcasts.BroadcastDetailView.as_view(),
        name="push-broadcast",
    ),
    path(
        "push/broadcasts/<uuid:broadcast_id>/cancel",
        broadcasts.BroadcastCancelView.as_view(),
        name="push-broadcast-cancel",
    ),
    path("push/topics", topics.TopicListView.as_view(), name="push-topics"),
    path("push/topics/<str:topic>", topics.TopicView.as_view(), name="push-topic"),
    path(
        "push/topics/<str:topic>/members",
        topics.TopicMembersView.as_view(),
        name="push-topic-members",
    ),
    path("account/apps/<uuid:app_id>", account.AccountAppView.as_view(), name="account-app"),
]
