"""Run the django-q2 tasks queued in the ORM broker, in this process (for tests)."""

from __future__ import annotations

from django.utils.module_loading import import_string
from django_q.models import OrmQ


def drain(max_rounds: int = 20) -> int:
    """Run queued tasks (and the tasks they queue) until none is left; return how many ran."""
    ran = 0
    for _ in range(max_rounds):
        rows = list(OrmQ.objects.order_by("id"))
        if not rows:
            return ran
        for row in rows:
            task = row.task
            row.delete()
            import_string(task["func"])(*task["args"], **task["kwargs"])
            ran += 1
    raise AssertionError(f"the queue did not drain in {max_rounds} rounds")
