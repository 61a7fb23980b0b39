"""Run the django-q2 tasks queued in the ORM broker, in this process (for tests)."""

from __future__ import annotations

from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ


def drain(max_rounds: int = 20) -> int:
    """Run queued tasks (and the tasks they queue) until none is left; return how many ran.

    As a worker would: a task whose `lock` is still ahead (a scheduled send's, not yet due; a
    killed worker's, not yet given up) is left in the queue.
    """
    ran = 0
    for _ in range(max_rounds):
        rows = list(OrmQ.objects.filter(lock__lte=timezone.now()).order_by("id"))
        if not rows:
            return ran
        for row in rows:
            task = row.task
            row.delete()
            import_string(task["func"])(*task["args"], **task["kwargs"])
            ran += 1
    raise AssertionError(f"the queue did not drain in {max_rounds} rounds")
