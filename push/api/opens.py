"""POST /push/opened: a user opened a notification (open tracking, when the app has it on)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.tokens import UserTokenAuthentication
from keymaster.errors import validated
from keymaster.openapi import errors
from push.serializers import OpenedIn
from push.services.opens import delivery_open_by_token, notification_open


class OpenedView(APIView):
    # A service worker reports with the payload's open token alone; an app with its user's JWT.
    authentication_classes = [UserTokenAuthentication]
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=OpenedIn,
        responses={204: None, **errors(403, 404, 409)},
        tags=["devices"],
    )
    def post(self, request: Request) -> Response:
        """Record an open: `token` from a Web Push payload, or `notification_id` with a JWT."""
        data = validated(OpenedIn, request.data)
        if "token" in data:
            delivery_open_by_token(token=data["token"])
        elif not request.user or not request.user.is_authenticated:
            self.permission_denied(request, message="A notification_id needs the user's token.")
        else:
            notification_open(user=request.user, notification_id=data["notification_id"])
        return Response(status=status.HTTP_204_NO_CONTENT)
