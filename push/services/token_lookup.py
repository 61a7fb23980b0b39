"""Rotating TOKEN_LOOKUP_KEY: recompute every device's lookup HMAC with the current key."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from push.models import Device
from push.services.devices import device_token_hmac

logger = logging.getLogger(__name__)


def device_token_hmacs_recompute() -> tuple[int, int]:
    """Store every device's token HMAC under TOKEN_LOOKUP_KEY; return (changed, removed).

    A device whose token was registered again under the new key meanwhile (so two rows hold
    one token) is removed: the row under the new key is the one registrations find.
    """
    changed = removed = 0
    rows = Device.objects.only("pk", "transport", "token", "token_hmac").order_by("pk")
    for device in rows.iterator(chunk_size=1000):
        current = device_token_hmac(device.transport, device.token)
        if current == device.token_hmac:
            continue
        try:
            with transaction.atomic():
                Device.objects.filter(pk=device.pk).update(token_hmac=current)
            changed += 1
        except IntegrityError:
            Device.objects.filter(pk=device.pk).delete()
            removed += 1
            logger.info("device %s removed: its token is registered again as another", device.pk)
    return changed, removed
