"""The peer's django-q2 tasks: one send to one device through django-push-notifications.

Each task does what a team's `notify` task would: load the device by id and call the library's
`send_message`. The only addition is one appended line per answer (ok flag and time) in
BENCH_PEER_RESULTS_DIR, so the driver can count 2xx answers and time the last one without a
database write the peer would not otherwise make.
"""

from __future__ import annotations

import os
import time
from typing import Any

from firebase_admin import messaging
from push_notifications.models import GCMDevice, WebPushDevice


def send_webpush(device_id: int, payload: str) -> None:
    """Send `payload` to one WebPushDevice."""
    ok = False
    try:
        device = WebPushDevice.objects.get(pk=device_id)
        result = device.send_message(payload)
        ok = result.get("success") == 1
    finally:
        _record("webpush", ok)


def send_fcm(device_id: int, title: str, body: str, data: dict[str, str]) -> None:
    """Send a notification with `data` to one GCMDevice (FCM)."""
    ok = False
    try:
        device = GCMDevice.objects.get(pk=device_id)
        # The library README's way: a firebase-admin Message, which send_message addresses.
        message = messaging.Message(
            notification=messaging.Notification(title=title, body=body), data=data or None
        )
        response = device.send_message(message)
        ok = response is not None and response.success_count == 1
    finally:
        _record("fcm", ok)


def warm_up(_: Any = None) -> None:
    """Do nothing but prove a worker is taking tasks."""
    _record("warmup", True)


def _record(kind: str, ok: bool) -> None:
    directory = os.environ.get("BENCH_PEER_RESULTS_DIR")
    if not directory:
        return
    # O_APPEND keeps each short line whole; one file per process keeps writers apart.
    with open(os.path.join(directory, f"{kind}-{os.getpid()}.log"), "a") as out:
        out.write(f"{int(ok)} {time.time():.6f}\n")
