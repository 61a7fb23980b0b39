"""A sweeper in each worker process: work left by a dead worker resumes within seconds.

django-q2's scheduler runs the `push.tasks.sweep` schedule once a minute at best, and a killed
cluster's tasks come back only after Q_RETRY (180 s): together, the ~200 s of idle queued work a
SIGKILLed qcluster used to cause. So each worker process (django-q2's `post_spawn`) also runs
the sweep in a daemon thread every PUSH_SWEEP_SECONDS, on its own database connection: claims
whose lease ran out (their worker stopped renewing them: it died) are queued again, and so is
work queued more than a lease ago while no worker holds a claim (its task sits in a dead
cluster's hands). Sweeps are conditional updates: several at once do the work once.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)


def sweeper_start(stop: threading.Event | None = None, **kwargs: object) -> threading.Thread:
    """Start this worker process's sweeper thread (a `post_spawn` receiver); `stop` ends it."""
    thread = threading.Thread(
        target=_sweep_forever, args=(stop or threading.Event(),), name="push-sweeper", daemon=True
    )
    thread.start()
    return thread


def _sweep_forever(stop: threading.Event) -> None:
    from push.tasks import sweep  # the worker has imported it already (apps.py)

    while not stop.wait(settings.PUSH_SWEEP_SECONDS):
        try:
            close_old_connections()
            sweep()
        except Exception:  # the database is away: the next round tries again
            logger.exception("worker sweep failed")
            connection.close()
    connection.close()
