"""POST /push/send/broadcast, GET /push/broadcasts/{id} and POST /push/broadcasts/{id}/cancel."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPushSendScope
from accounts.tokens import ClientTokenAuthentication
from keymaster import metrics
from keymaster.errors import validated
from keymaster.openapi import ErrorOut, errors
from push.selectors_scheduling import broadcast_summary
from push.serializers_scheduling import BroadcastDetailOut, BroadcastIn, BroadcastOut
from push.services.broadcasts import (
    BroadcastDraft,
    broadcast_cancel,
    broadcast_for_app,
    broadcast_send,
)

_DRAFT = ("title", "body", "data", "ttl", "priority", "collapse_key", "urgency", "send_at", "topic")


BROADCAST_ERRORS = {
    **errors(403, 404, 429),
    400: OpenApiResponse(
        ErrorOut,
        description="Invalid input (`validation_error`, `fields` naming each), or content too "
        "large for a provider of the broadcast's platforms, every provider when none is named "
        "(`payload_too_large`: `fields` names its title, body and data, `size` and `limit` in "
        "bytes, `provider` `webpush` or `fcm`). Nothing was stored or counted.",
    ),
}


class _ClientView(APIView):
    authentication_classes = [ClientTokenAuthentication]
    permission_classes = [HasPushSendScope]


class BroadcastView(_ClientView):
    @extend_schema(
        request=BroadcastIn,
        responses={202: BroadcastOut, 200: BroadcastOut, **BROADCAST_ERRORS},
        tags=["send"],
    )
    def post(self, request: Request) -> Response:
        """Send to every enrolled user with a device (of `platforms`, in `topic`); fan out later."""
        data = validated(BroadcastIn, request.data)
        draft = BroadcastDraft(**{name: data[name] for name in _DRAFT}, platforms=data["platforms"])
        accepted = broadcast_send(app=request.user.app, draft=draft, dry_run=data["dry_run"])
        body = {"broadcast_id": accepted.broadcast_id, "recipients": accepted.recipients}
        if data["dry_run"]:
            return Response({**body, "dry_run": True}, status=200)
        metrics.notifications_accepted("broadcast", accepted.recipients)
        return Response({**body, "broadcast_id": str(accepted.broadcast_id)}, status=202)


class BroadcastDetailView(_ClientView):
    @extend_schema(responses={200: BroadcastDetailOut, **errors(403)}, tags=["send"])
    def get(self, request: Request, broadcast_id: str) -> Response:
        """Show a broadcast: its status and how many of its notifications stand where."""
        broadcast = broadcast_for_app(app=request.user.app, broadcast_id=broadcast_id)
        return Response(BroadcastDetailOut(broadcast_summary(broadcast)).data)


class BroadcastCancelView(_ClientView):
    @extend_schema(request=None, responses={200: BroadcastDetailOut, **errors(403)}, tags=["send"])
    def post(self, request: Request, broadcast_id: str) -> Response:
        """Stop a broadcast: cancel each of its notifications not yet handed to a provider."""
        broadcast = broadcast_cancel(app=request.user.app, broadcast_id=broadcast_id)
        return Response(BroadcastDetailOut(broadcast_summary(broadcast)).data)
