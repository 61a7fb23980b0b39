"""Stale devices: a token not registered again for DEVICE_STALE_DAYS is removed (daily).

FCM treats a token unused for 270 days as expired and advises dropping it
(https://firebase.google.com/docs/cloud-messaging/manage-tokens); a Web Push subscription
the browser has not renewed in as long is as likely dead. Each app's removals are one audit
event with how many went. DEVICE_STALE_DAYS=0 turns this off.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from django.conf import settings
from django.db import transaction

from accounts.models import App
from keymaster.outage import through_db_outage
from push.models import Device
from push.selectors import stale_cutoff
from push.services.audit import audit_record

logger = logging.getLogger(__name__)

BATCH = 1000


def devices_remove_stale(*, now: datetime | None = None) -> dict[str, int]:
    """Remove every stale device, in batches; audit each app's count; return counts by app."""
    cutoff = stale_cutoff(now)
    if cutoff is None:
        return {}
    removed: Counter[str] = Counter()
    while True:
        with transaction.atomic():
            # `device_last_seen`: the oldest registrations first.
            rows = list(
                Device.objects.select_for_update(skip_locked=True)
                .filter(last_seen_at__lt=cutoff)
                .order_by("last_seen_at")
                .values_list("id", "app_id")[:BATCH]
            )
            if not rows:
                break
            Device.objects.filter(id__in=[pk for pk, _ in rows]).delete()
        removed.update(str(app_id) for _, app_id in rows)
    for app in App.objects.filter(app_id__in=list(removed)):
        audit_record(
            app=app,
            actor=None,
            action="devices.stale_removed",
            count=removed[str(app.app_id)],
            days=settings.DEVICE_STALE_DAYS,
        )
    if removed:
        logger.info("stale devices: removed %d in %d apps", sum(removed.values()), len(removed))
    return dict(removed)


@through_db_outage
def devices_remove_stale_task() -> dict[str, int]:
    """The daily schedule's entry (push-stale-devices)."""
    return devices_remove_stale()
