"""Prometheus metrics: the counters every process adds to, and `GET /metrics` that reads them.

With PROMETHEUS_MULTIPROC_DIR set (before anything imports prometheus_client: settings does
it), each gunicorn worker and each qcluster process writes its counts to files in that
directory and a scrape adds them up, so N sends spread over several processes read N. Unset,
a scrape sees only the process that answers it (fine for `make run`, wrong for production).

Labels take only a handful of values each (an endpoint, a provider, an outcome, a route
pattern): never a user, device, app or notification id.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from keymaster.errors import json_error

# Seconds from acceptance to the provider's (or the webhook's) answer: a first attempt takes
# well under a second, retries minutes to hours.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)

NOTIFICATIONS_ACCEPTED = Counter(
    "keymaster_notifications_accepted_total",
    "Notifications accepted by a send, by send endpoint.",
    ["endpoint"],
)
DELIVERIES = Counter(
    "keymaster_deliveries_total",
    "Delivery attempts answered, by provider and outcome (delivered, retry, invalid_token, "
    "failed); provider `none` when no request was made (device removed, TTL ran out).",
    ["provider", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "keymaster_delivery_seconds",
    "Seconds from a notification's acceptance to a provider's answer about one delivery.",
    ["provider"],
    buckets=_LATENCY_BUCKETS,
)
RECEIPTS = Counter(
    "keymaster_receipts_total",
    "Receipt POSTs answered, by outcome (delivered, retry, failed; stopped: webhook off).",
    ["outcome"],
)
RECEIPT_SECONDS = Histogram(
    "keymaster_receipt_seconds",
    "Seconds from a notification's acceptance to its webhook answering a receipt.",
    buckets=_LATENCY_BUCKETS,
)
PROVIDER_REQUESTS = Counter(
    "keymaster_provider_requests_total",
    "Requests to FCM, Web Push services and webhooks, by provider and answer (ok, or the "
    "provider's error code: http_429, UNREGISTERED, timeout...).",
    ["provider", "status"],
)
OPENS = Counter(
    "keymaster_opens_total",
    "Deliveries marked opened by POST /push/opened, by how the open was reported (token: a "
    "Web Push payload's open token; app: an app's notification_id with its user's token).",
    ["via"],
)
BROADCAST_NOTIFICATIONS = Counter(
    "keymaster_broadcast_notifications_total",
    "Notifications a broadcast's fan-out made, one per recipient, by the status they start in "
    "(queued, scheduled, muted, no_devices).",
    ["status"],
)
HTTP_REQUESTS = Counter(
    "keymaster_http_requests_total",
    "HTTP requests answered, by method, route pattern and status code.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "keymaster_http_request_seconds",
    "Seconds to answer an HTTP request, by route pattern.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def notifications_accepted(endpoint: str, count: int) -> None:
    """Count `count` notifications accepted by the `endpoint` send kind (send, bulk, batch...)."""
    if count:
        NOTIFICATIONS_ACCEPTED.labels(endpoint).inc(count)


def opens_recorded(via: str, count: int) -> None:
    """Count `count` deliveries marked opened, reported `via` a token or by the app."""
    if count:
        OPENS.labels(via).inc(count)


def broadcast_notifications_made(statuses: Iterable[str]) -> None:
    """Count a fan-out chunk's notifications by status once its transaction commits."""
    made = Tally(str(status) for status in statuses)

    def count() -> None:
        for status, number in made.items():
            BROADCAST_NOTIFICATIONS.labels(status).inc(number)

    transaction.on_commit(count)


def _provider_status(outcome: Any) -> str:
    """What a provider answered (an Outcome), as the `status` label: ok, or its error."""
    return "ok" if outcome.kind == "delivered" else (outcome.error or str(outcome.kind))


def _count(counter: Counter, tally: Tally) -> None:
    """Add a tally keyed by label values to `counter`: one increment per label set, not per item."""
    for labels, number in tally.items():
        counter.labels(*labels).inc(number)


def deliveries_answered(
    deliveries: Iterable[Any], outcomes: Mapping[Any, Any], providers: Mapping[Any, str]
) -> None:
    """Count each delivery's outcome; time those a provider answered from their acceptance.

    `outcomes` and `providers` are keyed by delivery id: its Outcome, and the provider it
    went to (absent: no request was made).
    """
    now = timezone.now()
    accepted_at = {d.id: d.notification.created_at for d in deliveries}
    answered, requests = Tally(), Tally()
    for delivery_id, outcome in outcomes.items():
        provider = providers.get(delivery_id)
        answered[provider or "none", str(outcome.kind)] += 1
        if provider:
            requests[provider, _provider_status(outcome)] += 1
            if delivery_id in accepted_at:
                seconds = (now - accepted_at[delivery_id]).total_seconds()
                DELIVERY_SECONDS.labels(provider).observe(max(seconds, 0.0))
    _count(DELIVERIES, answered)
    _count(PROVIDER_REQUESTS, requests)


def receipts_answered(results: Iterable[tuple[Any, Any]], stopped: int) -> None:
    """Count receipt POSTs, `results` (receipt, WebhookResult), and `stopped` never POSTed."""
    from push.delivery.monitor import receipts_accepted_at

    results = list(results)
    if stopped:
        RECEIPTS.labels("stopped").inc(stopped)
    if not results:
        return
    now = timezone.now()
    accepted = receipts_accepted_at([receipt for receipt, _ in results])
    answered, requests = Tally(), Tally()
    for receipt, result in results:
        answered[(str(result.outcome.kind),)] += 1
        requests["webhook", _provider_status(result.outcome)] += 1
        if result.outcome.kind == "delivered" and receipt.id in accepted:
            RECEIPT_SECONDS.observe(max((now - accepted[receipt.id]).total_seconds(), 0.0))
    _count(RECEIPTS, answered)
    _count(PROVIDER_REQUESTS, requests)


class HttpMetricsMiddleware:
    """Count and time every request by its URL pattern (`api/apps/<uuid:app_id>`), not path."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name) if match else "unmatched"
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response


class _QueueCollector(Collector):
    """The gauges read from PostgreSQL at scrape time (push.delivery.monitor: a few index reads)."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from push.delivery.monitor import queue_state, webhooks_disabled

        due = GaugeMetricFamily(
            "keymaster_queue_due", "Deliveries and receipts due now, not yet sent.", labels=["kind"]
        )
        oldest = GaugeMetricFamily(
            "keymaster_queue_oldest_due_seconds",
            "Age of the oldest due delivery / receipt (0: none due).",
            labels=["kind"],
        )
        for kind, (count, age) in queue_state().items():
            due.add_metric([kind], count)
            oldest.add_metric([kind], age)
        yield due
        yield oldest
        yield GaugeMetricFamily(
            "keymaster_webhooks_disabled",
            "Apps whose webhook answered 410 and gets no receipts until its URL changes.",
            value=webhooks_disabled(),
        )


class _Forward(Collector):
    """This process's own metrics, for a registry built per scrape."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Any]:
        return self.source.collect()


def _registry() -> CollectorRegistry:
    """A registry for one scrape: every process's counts (or this one's), and the gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(_QueueCollector())
    return registry


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: the Prometheus text format, to METRICS_TOKEN's bearer or to loopback."""
    if not _allowed(request):
        return json_error(403, "forbidden", "Metrics need the METRICS_TOKEN bearer token.")
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
