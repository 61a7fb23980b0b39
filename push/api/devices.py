"""Device registration, Web Push subscription, listing and removal."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import App, User
from accounts.permissions import HasPushSendScope, app_for_admin
from accounts.tokens import (
    AnyTokenAuthentication,
    CookieTokenAuthentication,
    UserTokenAuthentication,
)
from keymaster.errors import InvalidInput, NotFound, validated
from keymaster.openapi import ErrorOut, errors
from push.api.user_agent import device_label
from push.cors import OriginNotAllowed, cross_origin
from push.selectors import devices_of_app, devices_of_user_by_app, webpush_subscription_count
from push.serializers import (
    AccountDevicesOut,
    DeviceIdOut,
    DeviceListOut,
    DeviceListQuery,
    DeviceOut,
    RegisterIn,
    SubscribeIn,
    SubscribeOut,
)
from push.services.devices import device_register, device_remove

# 403 also when a web page of another origin registers for an app that does not list it.
ORIGIN_ERRORS = {
    **errors(404, 429),
    403: OpenApiResponse(
        ErrorOut,
        description="Push is disabled for the app (`push_disabled`), the user is not enrolled "
        "(`not_enrolled`), or the calling page's origin is not in the app's allowed_origins "
        "(`origin_not_allowed`).",
    ),
}


def _path_id(description: str) -> OpenApiParameter:
    # One path, two meanings: GET lists an app's devices, DELETE removes one device.
    return OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description=description)


class RegisterView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(
        request=RegisterIn,
        responses={201: DeviceIdOut, 200: DeviceIdOut, **ORIGIN_ERRORS},
        tags=["devices"],
    )
    def post(self, request: Request) -> Response:
        """Register a device's push token (or refresh it: the device_id is stable)."""
        data = validated(RegisterIn, request.data)
        device, created = device_register(
            user=request.user,
            app_id=data["app_id"],
            platform=data["platform"],
            push_token=data["push_token"],
            label=device_label(request),
            origin=cross_origin(request),
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response({"device_id": str(device.id)}, status=code)


class SubscribeView(APIView):
    authentication_classes = [CookieTokenAuthentication, UserTokenAuthentication]

    @extend_schema(
        request=SubscribeIn,
        responses={200: SubscribeOut, **ORIGIN_ERRORS},
        tags=["devices"],
    )
    def post(self, request: Request) -> Response:
        """Save this browser's Web Push subscription (upsert by user, app and endpoint)."""
        origin = cross_origin(request)
        if origin and isinstance(request.successful_authenticator, CookieTokenAuthentication):
            raise OriginNotAllowed("A cross-origin call authenticates with a Bearer token.")
        data = validated(SubscribeIn, request.data)
        app_id = data.pop("app_id", None) or settings.PUSH_DEFAULT_APP_ID
        if not app_id:
            raise InvalidInput({"app_id": ["Required: no default app is configured."]})
        subscription = {
            "endpoint": data["endpoint"],
            "expirationTime": data.get("expirationTime"),
            "keys": dict(data["keys"]),
        }
        device, _ = device_register(
            user=request.user,
            app_id=app_id,
            platform="web",
            push_token=subscription,
            label=device_label(request),
            # Keymaster's own app: every signed-in person may get its notifications.
            auto_enroll=str(app_id) == settings.PUSH_DEFAULT_APP_ID,
            request_field="",  # the body is the subscription: errors name `keys.p256dh`
            origin=origin,
        )
        return Response({"ok": True, "count": webpush_subscription_count(request.user, device.app)})


class DevicesView(APIView):
    """GET lists an app's devices (admin or the app's client); DELETE removes one device."""

    authentication_classes = [AnyTokenAuthentication]

    @extend_schema(
        parameters=[_path_id("The app_id whose devices to list."), DeviceListQuery],
        responses={200: DeviceListOut, **errors(403, 404)},
        tags=["devices"],
    )
    def get(self, request: Request, pk: str) -> Response:
        """List the app's devices: ?platform=&user_id= filter, ?limit=&offset= paginate."""
        app = self._listed_app(request, pk)
        # A plain dict, so `?user_id=` is an invalid id (400), not a filter silently dropped.
        query = validated(DeviceListQuery, request.query_params.dict())
        devices = devices_of_app(app, platform=query.get("platform"), user_id=query.get("user_id"))
        page = devices[query["offset"] : query["offset"] + query["limit"]]
        return Response(
            {
                "devices": DeviceOut(page, many=True).data,
                "total": devices.count(),
                "limit": query["limit"],
                "offset": query["offset"],
            }
        )

    def _listed_app(self, request: Request, pk: str) -> App:
        # An admin lists any app they administer; an app's backend (push:send) only its own.
        if isinstance(request.user, User):
            return app_for_admin(pk, request.user)
        if not HasPushSendScope().has_permission(request, self):
            self.permission_denied(request, message=HasPushSendScope.message)
        if str(request.user.app.app_id) != str(pk):
            raise NotFound("No such app.")
        return request.user.app

    @extend_schema(
        parameters=[_path_id("The device_id of the device to remove.")],
        responses={204: None, **errors(403)},
        tags=["devices"],
    )
    def delete(self, request: Request, pk: str) -> Response:
        """Remove a device: its app's backend (push:send) or its own user."""
        if not isinstance(request.user, User) and not HasPushSendScope().has_permission(
            request, self
        ):
            self.permission_denied(request, message=HasPushSendScope.message)
        device_remove(device_id=pk, caller=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccountDevicesView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(responses={200: AccountDevicesOut}, tags=["devices"])
    def get(self, request: Request) -> Response:
        """List the caller's own devices, grouped by app."""
        groups = devices_of_user_by_app(request.user)
        total = sum(len(group["devices"]) for group in groups)
        return Response(
            AccountDevicesOut({"user_id": request.user.id, "apps": groups, "total": total}).data
        )
