"""PATCH /account/apps/{app_id}: an end user mutes or unmutes an app."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import enrollment_mute
from accounts.tokens import UserTokenAuthentication
from keymaster.errors import validated
from push.serializers_scheduling import AppMuteIn, AppMuteOut


class AccountAppView(APIView):
    authentication_classes = [UserTokenAuthentication]

    @extend_schema(request=AppMuteIn, responses={200: AppMuteOut}, tags=["devices"])
    def patch(self, request: Request, app_id: str) -> Response:
        """Mute an app (`{"muted": true}`): its sends to you are recorded, never delivered."""
        data = validated(AppMuteIn, request.data)
        enrollment = enrollment_mute(user=request.user, app_id=app_id, muted=data["muted"])
        return Response(AppMuteOut({"app_id": enrollment.app_id, "muted": enrollment.muted}).data)
