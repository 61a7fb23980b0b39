"""Topics: /push/topics, /push/topics/{topic} and /push/topics/{topic}/members."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPushSendScope
from accounts.tokens import ClientTokenAuthentication
from keymaster.errors import validated
from keymaster.openapi import errors
from push.selectors_scheduling import topic_member_ids, topics_of_app
from push.serializers_scheduling import (
    TopicListOut,
    TopicMemberListOut,
    TopicMembersIn,
    TopicMembersQuery,
    TopicOut,
    topic_name_checked,
)
from push.services.topics import TOPIC_NAME, topic_delete, topic_for_app, topic_members_change

TOPIC = OpenApiParameter(
    "topic",
    str,
    OpenApiParameter.PATH,
    pattern=f"^{TOPIC_NAME.pattern}$",
    description="1–64 characters of A-Z a-z 0-9 _ . ~ - (another name is a 400)",
)


class _ClientView(APIView):
    authentication_classes = [ClientTokenAuthentication]
    permission_classes = [HasPushSendScope]


class TopicListView(_ClientView):
    @extend_schema(responses={200: TopicListOut, **errors(403)}, tags=["topics"])
    def get(self, request: Request) -> Response:
        """List the app's topics with their member counts."""
        topics = [{"topic": t.name, "members": t.members} for t in topics_of_app(request.user.app)]
        return Response(TopicListOut({"topics": topics, "total": len(topics)}).data)


class TopicView(_ClientView):
    @extend_schema(
        parameters=[TOPIC], responses={204: None, **errors(400, 403, 404)}, tags=["topics"]
    )
    def delete(self, request: Request, topic: str) -> Response:
        """Delete a topic and its memberships."""
        topic_delete(app=request.user.app, topic=topic_name_checked(topic))
        return Response(status=204)


class TopicMembersView(_ClientView):
    @extend_schema(
        request=TopicMembersIn,
        parameters=[TOPIC],
        responses={200: TopicOut, **errors(403)},
        tags=["topics"],
    )
    def post(self, request: Request, topic: str) -> Response:
        """Add and remove members (enrolled users only; at most 10,000 ids a call)."""
        name = topic_name_checked(topic)
        data = validated(TopicMembersIn, request.data)
        members = topic_members_change(
            app=request.user.app, topic=name, add=data["add"], remove=data["remove"]
        )
        return Response(TopicOut({"topic": name, "members": members}).data)

    @extend_schema(
        parameters=[TOPIC, TopicMembersQuery],
        responses={200: TopicMemberListOut, **errors(403, 404)},
        tags=["topics"],
    )
    def get(self, request: Request, topic: str) -> Response:
        """List a page of a topic's members (user ids, in id order)."""
        query = validated(TopicMembersQuery, request.query_params)
        found = topic_for_app(app=request.user.app, topic=topic_name_checked(topic))
        page = {
            "topic": found.name,
            "user_ids": topic_member_ids(found, limit=query["limit"], offset=query["offset"]),
            "members": found.member_rows.count(),
            **query,
        }
        return Response(TopicMemberListOut(page).data)
