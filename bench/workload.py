"""The delivery workload the peer and the floor sender share: same messages, same fakes.

Both comparison senders send the spec's title, body and data: as the FCM notification and data
map, and as the JSON the Web Push payload carries, so every sender moves the same bytes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx

REQUIRED_KEYS = (
    "fcm_url",
    "fcm_service_account_file",
    "fcm_tokens",
    "webpush_subscriptions",
    "vapid_private_key_pem",
    "vapid_subject",
    "title",
    "body",
)


def check_spec(spec: dict[str, Any]) -> None:
    """Raise ValueError naming the first missing or malformed key of a benchmark spec."""
    for key in REQUIRED_KEYS:
        if key not in spec:
            raise ValueError(f"spec is missing {key!r}")
    if not isinstance(spec["fcm_tokens"], list) or not isinstance(
        spec["webpush_subscriptions"], list
    ):
        raise ValueError("spec 'fcm_tokens' and 'webpush_subscriptions' must be lists")
    if int(spec.get("workers", 1)) < 1:
        raise ValueError("spec 'workers' must be at least 1")


def webpush_payload(spec: dict[str, Any]) -> bytes:
    """Return the plaintext every Web Push message carries."""
    content = {"title": spec["title"], "body": spec["body"], "data": spec.get("data") or {}}
    return json.dumps(content, separators=(",", ":")).encode()


def fcm_data(spec: dict[str, Any]) -> dict[str, str]:
    """Return the FCM data map (FCM takes string values only; others are sent as JSON)."""
    data = spec.get("data") or {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def webpush_origins(spec: dict[str, Any]) -> list[str]:
    """Return the distinct push-service origins of the spec's subscriptions."""
    origins = []
    for subscription in spec["webpush_subscriptions"]:
        parts = urlsplit(subscription["endpoint"])
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in origins:
            origins.append(origin)
    return origins


def fake_counts(spec: dict[str, Any]) -> dict[str, int]:
    """Return what the fakes have accepted so far: decrypted Web Push and FCM messages."""
    counts = {"webpush_delivered": 0, "fcm_accepted": 0}
    with httpx.Client(timeout=10) as client:
        for origin in webpush_origins(spec):
            stats = client.get(f"{origin}/_control/stats").raise_for_status().json()
            counts["webpush_delivered"] += int(stats["delivered"])
        stats = client.get(f"{spec['fcm_url'].rstrip('/')}/_control/stats").raise_for_status()
        counts["fcm_accepted"] = int(stats.json()["messages"])
    return counts


def provider_result(messages: int, ok: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """Return one provider's entry of a result: counts, duration and delivered per second."""
    per_second = ok / seconds if seconds > 0 else 0.0
    return {
        "messages": messages,
        "ok": ok,
        "seconds": round(seconds, 3),
        "per_second": round(per_second, 1),
        **extra,
    }
