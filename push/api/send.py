"""POST /push/send, /push/send/bulk, /push/send/batch and GET /push/notifications/{id}."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPushSendScope
from accounts.tokens import ClientTokenAuthentication
from keymaster import metrics
from keymaster.errors import InvalidInput, validated
from keymaster.logs import log_ids
from keymaster.openapi import PRINTABLE_ASCII_PATTERN, ErrorOut, errors
from push.api.idempotency import MAX_KEY_LENGTH, send_idempotently
from push.api.ratelimit import quota_headers
from push.selectors import app_for_send, notification_of_app
from push.serializers import (
    BatchIn,
    BulkIn,
    CancelOut,
    NotificationOut,
    SendIn,
    SendManyOut,
    SendOut,
)
from push.services.notifications import (
    NotificationDraft,
    notifications_send,
)
from push.services.scheduling import notification_cancel

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": PRINTABLE_ASCII_PATTERN},
    OpenApiParameter.HEADER,
    required=False,
    description="1 to 255 printable ASCII characters; a repeat within 24 h replays the answer.",
)
# Response headers (draft-ietf-httpapi-ratelimit-headers): a send and a dry run say where the
# daily quota stands, and so does the 429 that refuses one; a replay says it is one instead.
SEND_HEADERS = [
    OpenApiParameter(
        name,
        {"type": "integer", "minimum": 0},
        OpenApiParameter.HEADER,
        response=[200, 202, 429],
        description=description,
    )
    for name, description in (
        ("RateLimit-Limit", "The app's daily quota of notifications."),
        ("RateLimit-Remaining", "Notifications left today after this send."),
        ("RateLimit-Reset", "Seconds until the quota resets, at 00:00 UTC."),
    )
] + [
    OpenApiParameter(
        "Idempotent-Replayed",
        str,
        OpenApiParameter.HEADER,
        response=[202],
        enum=["true"],
        description="Present when this answer replays an earlier send with the same "
        "Idempotency-Key (and then no RateLimit-* header is sent: nothing was counted).",
    )
]
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
# 200 answers a dry run; 403: no push:send scope, push disabled, users not enrolled; 422: an
# Idempotency-Key reused with another body; 429: the daily quota.
SEND_ERRORS = {
    **errors(403, 422, 429),
    400: OpenApiResponse(
        ErrorOut,
        description="Invalid input (`validation_error`, `fields` naming each; `data` keys FCM "
        "reserves are one), or a notification too large for a provider its user has a device "
        "with (`payload_too_large`: `fields` names its title, body and data, `size` and "
        "`limit` in bytes, `provider` `webpush` or `fcm`). Nothing was stored or counted.",
    ),
}
_CONTENT = ("title", "body", "data", "ttl", "priority", "collapse_key", "urgency", "send_at")


def _draft(user_id: Any, content: dict) -> NotificationDraft:
    return NotificationDraft(user_id=user_id, **{name: content[name] for name in _CONTENT})


class _SendView(APIView):
    authentication_classes = [ClientTokenAuthentication]
    permission_classes = [HasPushSendScope]
    input: type[serializers.Serializer]
    endpoint = ""
    field_prefix = ""  # how an error names one notification's fields in the request

    def get_authenticators(self) -> list[ClientTokenAuthentication]:
        # The app comes with what a send needs of its push config: one query for both.
        return [ClientTokenAuthentication(app_for_send)]

    def drafts(self, data: dict) -> list[NotificationDraft]:
        raise NotImplementedError

    def ids_body(self, ids: list) -> dict[str, Any]:
        return {"notification_ids": [str(i) for i in ids]}

    def answer(self, ids: list, dry_run: bool) -> dict:
        body = self.ids_body(ids)
        return {**body, "dry_run": True} if dry_run else body

    def post(self, request: Request) -> Response:
        log_ids(app_id=request.user.app.app_id)
        key = request.headers.get("Idempotency-Key")
        # Printable ASCII, as the IETF draft's sf-string: a NUL would reach PostgreSQL.
        if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and _PRINTABLE.fullmatch(key)):
            raise InvalidInput(
                {"Idempotency-Key": [f"Must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."]}
            )
        data = validated(self.input, request.data)
        app, headers = request.user.app, {}
        config = getattr(app, "push_config", None)  # loaded with the app (get_authenticators)

        def send() -> tuple[int, dict]:
            ids, take = notifications_send(
                app=app,
                drafts=self.drafts(data),
                dry_run=data["dry_run"],
                config=config,
                field_prefix=self.field_prefix,
            )
            headers.update(quota_headers(take))
            metrics.notifications_accepted(self.endpoint, len(ids))
            return (200 if data["dry_run"] else 202), self.answer(ids, data["dry_run"])

        status, body, replayed = send_idempotently(
            app=app,
            key=None if data["dry_run"] else key,
            endpoint=self.endpoint,
            payload=request.data,
            send=send,
        )
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=status, headers=headers)


class SendView(_SendView):
    input, endpoint = SendIn, "send"

    def drafts(self, data: dict) -> list[NotificationDraft]:
        return [_draft(data["user_id"], data)]

    def ids_body(self, ids: list) -> dict[str, Any]:
        return {"notification_id": str(ids[0]) if ids else None}

    @extend_schema(
        request=SendIn,
        responses={202: SendOut, 200: SendOut, **SEND_ERRORS},
        parameters=[IDEMPOTENCY_HEADER, *SEND_HEADERS],
        tags=["send"],
    )
    def post(self, request: Request) -> Response:
        """Send one notification to every device of one enrolled user."""
        return super().post(request)


class SendBulkView(_SendView):
    input, endpoint = BulkIn, "bulk"

    def drafts(self, data: dict) -> list[NotificationDraft]:
        return [_draft(user_id, data) for user_id in data["user_ids"]]

    @extend_schema(
        request=BulkIn,
        responses={202: SendManyOut, 200: SendManyOut, **SEND_ERRORS},
        parameters=[IDEMPOTENCY_HEADER, *SEND_HEADERS],
        tags=["send"],
    )
    def post(self, request: Request) -> Response:
        """Send the same notification to many users (ids answered in the same order)."""
        return super().post(request)


class SendBatchView(_SendView):
    input, endpoint = BatchIn, "batch"
    field_prefix = "notifications[{index}]."

    def drafts(self, data: dict) -> list[NotificationDraft]:
        return [_draft(item["user_id"], item) for item in data["notifications"]]

    @extend_schema(
        request=BatchIn,
        responses={202: SendManyOut, 200: SendManyOut, **SEND_ERRORS},
        parameters=[IDEMPOTENCY_HEADER, *SEND_HEADERS],
        tags=["send"],
    )
    def post(self, request: Request) -> Response:
        """Send different notifications in one request (ids answered in the same order)."""
        return super().post(request)


class NotificationView(APIView):
    authentication_classes = [ClientTokenAuthentication]
    permission_classes = [HasPushSendScope]

    @extend_schema(responses={200: NotificationOut, **errors(403)}, tags=["send"])
    def get(self, request: Request, notification_id: str) -> Response:
        """Show a notification's status and the outcome on each device."""
        notification = notification_of_app(request.user.app, notification_id)
        return Response(NotificationOut(notification).data)


class NotificationCancelView(APIView):
    authentication_classes = [ClientTokenAuthentication]
    permission_classes = [HasPushSendScope]

    @extend_schema(
        request=None,
        responses={
            200: CancelOut,
            409: OpenApiResponse(
                ErrorOut,
                description="`not_cancelable`: a delivery was handed to a provider, or the "
                "notification ended; `error.status` says where it stands.",
            ),
            **errors(403),
        },
        tags=["send"],
    )
    def post(self, request: Request, notification_id: str) -> Response:
        """Cancel a notification still scheduled or queued; its quota is given back."""
        notification_cancel(app=request.user.app, notification_id=notification_id)
        return Response({"notification_id": str(notification_id), "status": "canceled"})
