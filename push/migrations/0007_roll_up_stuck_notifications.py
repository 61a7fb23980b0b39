"""Roll up the notifications a race left queued after all their deliveries had ended.

Before this release two tasks ending a notification's last deliveries at the same time could
each miss the other's (push.services.delivery.notifications_roll_up): the notification stayed
"queued" for good. Each such notification gets the status and completion time the roll-up
would have given it: delivered if any delivery was, else failed, at its last delivery's time.
"""

from django.db import migrations
from django.db.models import Case, Exists, Max, OuterRef, Subquery, Value, When

OPEN = ("queued", "sending")


def roll_up_stuck(apps, schema_editor):
    Notification = apps.get_model("push", "Notification")
    Delivery = apps.get_model("push", "Delivery")
    of_it = Delivery.objects.filter(notification_id=OuterRef("pk"))
    # One UPDATE: every value comes from the notification's own deliveries.
    Notification.objects.filter(status="queued").filter(Exists(of_it)).exclude(
        Exists(of_it.filter(status__in=OPEN))
    ).update(
        status=Case(
            When(Exists(of_it.filter(status="delivered")), then=Value("delivered")),
            default=Value("failed"),
        ),
        completed_at=Subquery(
            of_it.values("notification_id").annotate(last=Max("updated_at")).values("last")
        ),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("push", "0006_claimed_index_by_lease"),
    ]

    operations = [
        migrations.RunPython(roll_up_stuck, migrations.RunPython.noop, elidable=True),
    ]
