"""A django-q2 worker imports the delivery code when it is spawned, before its first task."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_spawned_worker_has_the_delivery_code_imported_before_its_first_task():
    script = (
        "import sys, django; django.setup()\n"
        "from django_q.signals import post_spawn\n"
        "assert 'push.tasks' not in sys.modules, 'imported at start already'\n"
        "post_spawn.send(sender='django_q', proc_name='Process-1')\n"
        "assert 'push.transports.fcm' in sys.modules and 'push.tasks' in sys.modules\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "keymaster.settings", "DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
