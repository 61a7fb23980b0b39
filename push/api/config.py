"""GET/PATCH /push/config/{app_id} and the webhook secret's rotation (admin JWT)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import app_for_admin
from accounts.tokens import UserTokenAuthentication
from keymaster.errors import validated
from push.models import PushConfig
from push.selectors import device_count, notifications_today
from push.serializers import ConfigIn, ConfigOut
from push.services.app_admin import webhook_secret_read
from push.services.config import (
    push_config_for,
    push_config_rotate_webhook_secret,
    push_config_update,
)


def config_out(config: PushConfig) -> dict:
    return ConfigOut(
        {
            "enabled": config.enabled,
            "webhook_url": config.webhook_url,
            "webhook_secret": config.webhook_secret,
            "daily_quota": config.daily_quota,
            "device_count": device_count(config.app),
            "notifications_today": notifications_today(config),
            "vapid_public_key": config.vapid_public_key,
            "webhook_disabled_reason": config.webhook_disabled_reason,
            "last_error": config.last_error,
            "allowed_origins": config.allowed_origins,
            "track_opens": config.track_opens,
        }
    ).data


class ConfigView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(responses={200: ConfigOut}, tags=["config"])
    def get(self, request: Request, app_id: str) -> Response:
        """Show the app's push config, device count and today's usage."""
        app = app_for_admin(app_id, request.user)
        config = push_config_for(app)
        webhook_secret_read(config=config, actor=request.user)
        return Response(config_out(config))

    @extend_schema(request=ConfigIn, responses={200: ConfigOut}, tags=["config"])
    def patch(self, request: Request, app_id: str) -> Response:
        """Enable or disable push; set the webhook URL, quota, allowed origins, open tracking."""
        app = app_for_admin(app_id, request.user)
        config = push_config_update(
            app=app, actor=request.user, **validated(ConfigIn, request.data)
        )
        webhook_secret_read(config=config, actor=request.user)
        return Response(config_out(config))


class RotateWebhookSecretView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(request=None, responses={200: ConfigOut}, tags=["config"])
    def post(self, request: Request, app_id: str) -> Response:
        """Replace the webhook secret; the answer shows the new one."""
        app = app_for_admin(app_id, request.user)
        return Response(config_out(push_config_rotate_webhook_secret(app=app, actor=request.user)))
