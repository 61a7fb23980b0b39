"""Create the periodic tasks: the sweeper (every minute) and pruning (hourly)."""

from django.db import migrations


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, minutes in [
        ("push-sweep", "push.tasks.sweep", 1),
        ("push-prune", "push.tasks.prune", 60),
    ]:
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
        )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        name__in=["push-sweep", "push-prune"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("push", "0002_delivery_enqueued_at"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create, remove)]
