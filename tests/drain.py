"""Run the django-q2 tasks queued in the ORM broker, in this process (for tests)."""

from __future__ import annotations

from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ


def drain(max_rounds: int = 20, *, due_only: bool = False) -> int:
    """Run queued tasks (and the tasks they queue) until none is left; return how many ran.

    With `due_only`, as a worker would now: a task whose `lock` is still ahead (a scheduled
    send's before its time) is left in the queue. Without, every task runs, also those a killed
    worker had taken (their `lock` runs out only `Q_CLUSTER["retry"]` later).
    """
    ran = 0
    for _ in range(max_rounds):
        rows = OrmQ.objects.order_by("id")
        rows = list(rows.filter(lock__lte=timezone.now()) if due_only else rows)
        if not rows:
            return ran
        for row in rows:
            task = row.task
            row.delete()
            import_string(task["func"])(*task["args"], **task["kwargs"])
            ran += 1
    raise AssertionError(f"the queue did not drain in {max_rounds} rounds")
