"""Topics: named groups of an app's enrolled users, managed by the app's backend."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import transaction

from accounts.models import App, Enrollment
from keymaster.errors import NotFound
from push.models import Topic, TopicMember
from push.services.errors import NotEnrolled

logger = logging.getLogger(__name__)

TOPIC_NAME = re.compile(r"[A-Za-z0-9_.~-]{1,64}")
MAX_MEMBERS_PER_CALL = 10_000


def topic_members_change(*, app: App, topic: str, add: list[Any], remove: list[Any]) -> int:
    """Add and remove members of `topic` (created on first add); return how many it has.

    Every user added must be enrolled in the app: otherwise nothing changes (403 naming them).
    """
    with transaction.atomic():
        enrollments = dict(
            Enrollment.objects.filter(app=app, user_id__in=add).values_list("user_id", "id")
        )
        missing = [str(user_id) for user_id in add if user_id not in enrollments]
        if missing:
            raise NotEnrolled(
                f"{len(missing)} user(s) are not enrolled in this app.", user_ids=missing
            )
        if add:
            found, _ = Topic.objects.get_or_create(app=app, name=topic)
        else:
            found = Topic.objects.filter(app=app, name=topic).first()
        if found is None:
            return 0  # removing from a topic that does not exist: it has no members
        TopicMember.objects.bulk_create(
            [
                TopicMember(topic=found, enrollment_id=enrollments[user_id], user_id=user_id)
                for user_id in dict.fromkeys(add)
            ],
            ignore_conflicts=True,
            batch_size=2000,
        )
        if remove:
            TopicMember.objects.filter(topic=found, user_id__in=remove).delete()
        members = TopicMember.objects.filter(topic=found).count()
    logger.info("topic %s of app %s: +%d -%d", topic, app.pk, len(add), len(remove))
    return members


def topic_for_app(*, app: App, topic: str) -> Topic:
    """Return the app's topic of that name, or raise 404."""
    try:
        return Topic.objects.get(app=app, name=topic)
    except Topic.DoesNotExist:
        raise NotFound(f"No topic {topic!r} in this app.") from None


def topic_delete(*, app: App, topic: str) -> None:
    """Delete a topic and its memberships (404 if there is none)."""
    topic_for_app(app=app, topic=topic).delete()
    logger.info("topic %s of app %s deleted", topic, app.pk)
