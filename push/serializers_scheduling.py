"""Input and output shapes of broadcasts, topics, cancels and mute."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from keymaster.fields import StrictBooleanField, StrictCharField
from push.models import Platform
from push.selectors_scheduling import COUNTED
from push.serializers import MAX_OFFSET, ContentIn
from push.services.topics import MAX_MEMBERS_PER_CALL, TOPIC_NAME

TOPIC_HELP = "1–64 characters of A-Z a-z 0-9 _ . ~ -"


@extend_schema_field(
    {"type": "string", "pattern": f"^{TOPIC_NAME.pattern}$", "description": TOPIC_HELP}
)
class TopicNameField(StrictCharField):
    default_error_messages = {"bad_name": f"Must be {TOPIC_HELP}."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=64, help_text=TOPIC_HELP, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not TOPIC_NAME.fullmatch(value):
            self.fail("bad_name")
        return value


class StrictUUIDField(serializers.UUIDField):
    """A UUID that arrives as a JSON string (DRF would take `false` as UUID int 0)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def topic_name_checked(name: str) -> str:
    """Check a topic name from the path: a 400 naming `topic`."""
    serializer = TopicPathIn(data={"topic": name})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["topic"]


class TopicPathIn(serializers.Serializer):
    topic = TopicNameField()


class BroadcastIn(ContentIn):
    openapi_request_extra = {
        "properties": {
            "topic": {"pattern": f"^{TOPIC_NAME.pattern}$"},
            "platforms": {"minItems": 1},
        }
    }

    topic = TopicNameField(required=False, default="")
    platforms = serializers.ListField(
        child=serializers.ChoiceField(Platform.choices),
        required=False,
        default=list,
        allow_empty=False,
        min_length=1,
        help_text="only devices of these platforms (default: every platform)",
    )
    dry_run = StrictBooleanField(required=False, default=False)

    def validate_platforms(self, value: list) -> list:
        return list(dict.fromkeys(value))


class BroadcastOut(serializers.Serializer):
    broadcast_id = serializers.UUIDField(allow_null=True, help_text="null for a dry run")
    recipients = serializers.IntegerField(
        help_text="users with a device (of `platforms`, in `topic`), muted ones included"
    )
    dry_run = serializers.BooleanField(required=False)


class BroadcastCountsOut(serializers.Serializer):
    scheduled = serializers.IntegerField()
    queued = serializers.IntegerField()
    delivered = serializers.IntegerField()
    failed = serializers.IntegerField()
    canceled = serializers.IntegerField()
    muted = serializers.IntegerField()


assert set(BroadcastCountsOut().fields) == set(COUNTED)  # noqa: S101 - one list, two places


class BroadcastDetailOut(serializers.Serializer):
    broadcast_id = serializers.UUIDField()
    status = serializers.ChoiceField(["fanning_out", "scheduled", "sending", "done", "canceled"])
    recipients = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    send_at = serializers.DateTimeField(allow_null=True)
    topic = serializers.CharField(allow_null=True)
    platforms = serializers.ListField(child=serializers.CharField())
    counts = BroadcastCountsOut()


class TopicMembersIn(serializers.Serializer):
    add = serializers.ListField(
        child=StrictUUIDField(), required=False, default=list, max_length=MAX_MEMBERS_PER_CALL
    )
    remove = serializers.ListField(
        child=StrictUUIDField(), required=False, default=list, max_length=MAX_MEMBERS_PER_CALL
    )

    def validate(self, attrs: dict) -> dict:
        total = len(attrs["add"]) + len(attrs["remove"])
        if total > MAX_MEMBERS_PER_CALL:
            raise serializers.ValidationError(
                {
                    "add": [
                        f"At most {MAX_MEMBERS_PER_CALL} ids a call (add and remove); got {total}."
                    ]
                }
            )
        return attrs


class TopicOut(serializers.Serializer):
    topic = serializers.CharField()
    members = serializers.IntegerField()


class TopicListOut(serializers.Serializer):
    topics = TopicOut(many=True)
    total = serializers.IntegerField()


class TopicMembersQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=100)
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, required=False, default=0)


class TopicMemberListOut(serializers.Serializer):
    topic = serializers.CharField()
    user_ids = serializers.ListField(child=serializers.UUIDField())
    members = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()


class AppMuteIn(serializers.Serializer):
    openapi_whole_on_patch = True  # PATCH /account/apps/{app_id} needs `muted`

    muted = StrictBooleanField()


class AppMuteOut(serializers.Serializer):
    app_id = serializers.UUIDField()
    muted = serializers.BooleanField()
