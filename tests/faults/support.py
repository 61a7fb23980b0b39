"""What the fault tests share: a real `qcluster` subprocess on the test database, and figures."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
from django.conf import settings
from django.utils import timezone
from django_q.models import OrmQ

from push.models import DELIVERY_FINAL, Delivery, DeliveryStatus, Device, Receipt, ReceiptStatus
from push.tasks import sweep
from tests.factories import fcm_device, webpush_device
from tests.figures import figures_record
from tests.workers import wait_until, worker_env, worker_start


class Qcluster:
    """A real `manage.py qcluster` (its own process group) against the test database."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log
        fakes = {
            "FCM_CREDENTIALS_FILE": settings.FCM_CREDENTIALS_FILE,
            "FCM_API_URL": settings.FCM_API_URL,
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        }
        self._env = worker_env({**fakes, **env})
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Qcluster:
        self.process = worker_start(self._env, str(self.log))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole cluster: guard, workers, pusher and monitor."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        assert self.process is not None
        self.process.wait(10)

    def stop(self) -> None:
        """Stop the cluster as a supervisor would (SIGTERM to its main process), else kill it."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.kill()  # whatever is left of the group

    def worker(self) -> psutil.Process:
        """The worker process (the latest that said it was ready for work)."""
        pids = re.findall(r"ready for work at (\d+)", self.log_text())
        assert pids, "no worker has started"
        return psutil.Process(int(pids[-1]))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def fcm_devices(app: Any, user: Any, prefix: str, count: int) -> list[str]:
    """Register `count` FCM devices of `user` in `app` at once; return their tokens."""
    tokens = [f"{prefix}-{n:05d}-" + "x" * 30 for n in range(count)]
    Device.objects.bulk_create(fcm_device(app, user, token) for token in tokens)
    return tokens


def webpush_devices(app: Any, user: Any, fake: Any, count: int) -> list[str]:
    """Register `count` Web Push subscriptions (from `fake`) of `user` at once; return their ids."""
    key = app.push_config.vapid_public_key
    subscriptions = [fake.new_subscription(key) for _ in range(count)]
    Device.objects.bulk_create(webpush_device(app, user, sub) for sub in subscriptions)
    return [sub["endpoint"].rsplit("/", 1)[-1] for sub in subscriptions]


def times_sent(messages: Iterable[dict[str, Any]], tokens: Iterable[str]) -> Counter[str]:
    """How many times the FCM fake accepted a message for each of `tokens`."""
    wanted = set(tokens)
    return Counter(m["token"] for m in messages if m.get("token") in wanted)


def fault_figures(fault: str, **figures: Any) -> None:
    """Write one fault's figures into artifacts/reliability/faults.json (other faults kept)."""
    figures_record("faults", fault, figures)


def receipts_lost(received: Iterable[Any]) -> int:
    """Finished deliveries whose receipt is not among the webhook POSTs answered 2xx."""
    arrived = {post.headers.get("webhook-id") for post in received if post.status == 200}
    finished = Delivery.objects.filter(status__in=DELIVERY_FINAL)
    without_receipt = finished.filter(receipts__isnull=True).count()
    receipts = Receipt.objects.filter(delivery__in=finished).values_list("webhook_id", flat=True)
    return without_receipt + sum(1 for webhook_id in receipts if webhook_id not in arrived)


def worker_idle() -> bool:
    """No task queued or running, and no delivery or receipt claimed."""
    return not (
        OrmQ.objects.exists()
        or Delivery.objects.filter(status=DeliveryStatus.SENDING).exists()
        or Receipt.objects.filter(status=ReceiptStatus.SENDING).exists()
    )


def next_round() -> None:
    """Let the retries' backoff pass (their due time becomes now), then run the sweeper."""
    now = timezone.now()
    Delivery.objects.filter(status=DeliveryStatus.QUEUED).update(next_attempt_at=now)
    Receipt.objects.filter(status=ReceiptStatus.PENDING).update(next_attempt_at=now)
    sweep()


def attempt_rounds(rows: Any, rounds: int, timeout: float, what: str) -> Iterator[int]:
    """Yield each attempt number once every row of `rows` has made it and the worker is idle.

    Between attempts the retries' backoff is skipped (`next_round`), so round n is attempt n.
    """
    for attempt in range(1, rounds + 1):
        if attempt > 1:
            next_round()
        wait_until(
            lambda n=attempt: worker_idle() and set(rows.values_list("attempts", flat=True)) == {n},
            timeout,
            f"{what} {attempt}",
        )
        yield attempt
