"""django-q2 tasks: they take ids, and call the services that claim and do the work."""

from __future__ import annotations

from accounts.tokens import revoked_tokens_prune
from keymaster.outage import through_db_outage
from keymaster.ratelimit import counters_prune
from push.api.idempotency import idempotency_prune
from push.delivery import deliveries, receipts
from push.delivery.fanout import broadcasts_resume


@through_db_outage
def deliveries_send(delivery_ids: list[int]) -> dict[str, int]:
    """Deliver a chunk of deliveries (safe to run twice: claims are conditional)."""
    return deliveries.deliveries_send(delivery_ids)


@through_db_outage
def receipts_send(receipt_ids: list[int]) -> dict[str, int]:
    """POST a chunk of receipts (safe to run twice)."""
    return receipts.receipts_send(receipt_ids)


@through_db_outage
def sweep() -> dict[str, int]:
    """Queue due retries and take back the claims of workers that died (every minute)."""
    return {
        "deliveries": deliveries.deliveries_sweep(),
        "receipts": receipts.receipts_sweep(),
        "broadcasts": broadcasts_resume(),
    }


def prune() -> dict[str, int]:
    """Drop expired idempotency records, old counter windows and stale revocations (hourly)."""
    return {
        "idempotency": idempotency_prune(),
        "counters": counters_prune(older_than=3 * 86400),
        "revoked_tokens": revoked_tokens_prune(),
    }
