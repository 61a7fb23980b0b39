"""The benchmark's comparison senders deliver every message, decryptable, to the fakes.

Both run at a tiny scale against the session fakes (real HTTP on loopback): the peer through
django-push-notifications, django-q2 and its own PostgreSQL database, the floor sender with
no database. Correctness only: every subscription and token gets exactly the messages sent,
with the payload intact; no timings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from psycopg import sql
from standardwebhooks import Webhook

import bench.floor
import bench.peer
from bench.peer.driver import peer_database_url
from bench.workload import check_spec, fcm_data, webpush_payload
from fakes.webpush import b64url_encode

USERS = 20


@pytest.fixture
def spec(tmp_path, fake_fcm, fake_webpush):
    """A spec for USERS users, each with one FCM token and one restricted subscription."""
    fake_fcm.reset()
    fake_webpush.reset()
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    account = tmp_path / "fcm-service-account.json"
    account.write_text(json.dumps(fake_fcm.service_account("bench-project")))
    return {
        "fcm_url": fake_fcm.url,
        "fcm_service_account_file": str(account),
        "fcm_tokens": [f"bench-token-{n:03d}-" + "t" * 100 for n in range(USERS)],
        # Restricted to the VAPID key: the fake refuses a push signed with any other.
        "webpush_subscriptions": [
            fake_webpush.new_subscription(b64url_encode(public)) for _ in range(USERS)
        ],
        "vapid_private_key_pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "vapid_subject": "mailto:bench@example.com",
        "workers": 2,
        "title": "Your order shipped",
        "body": "It arrives on Tuesday.",
        "data": {"order": "12345", "count": 3},
    }


def assert_fakes_received(spec, fake_fcm, fake_webpush, copies: int) -> None:
    """Assert each subscription and token got `copies` intact messages and nothing else."""
    expected_payload = webpush_payload(spec)
    for subscription in spec["webpush_subscriptions"]:
        received = fake_webpush.received(subscription)
        assert [r.payload for r in received] == [expected_payload] * copies
        assert all(r.headers["content-encoding"] == "aes128gcm" for r in received)
    messages = fake_fcm.messages
    assert Counter(m["token"] for m in messages) == dict.fromkeys(spec["fcm_tokens"], copies)
    for message in messages:
        assert message["notification"] == {"title": spec["title"], "body": spec["body"]}
        assert message["data"] == {"order": "12345", "count": "3"}


def test_floor_delivers_every_message_once_per_run(spec, fake_fcm, fake_webpush):
    spec["floor_single_process"] = True

    result = bench.floor.run(spec)

    for run in (result, result["single_process"]):
        assert run["webpush"]["ok"] == run["webpush"]["messages"] == USERS
        assert run["fcm"]["ok"] == run["fcm"]["messages"] == USERS
    assert result["process_count"] == 2
    assert set(result["processes"]) == {"floor-0", "floor-1"}
    assert result["fake_check"] == {"webpush_delivered": 2 * USERS, "fcm_accepted": 2 * USERS}
    assert_fakes_received(spec, fake_fcm, fake_webpush, copies=2)
    # One VAPID JWT per sender process, signed once and reused for every message.
    assert fake_webpush.jwts_seen == 3


def test_floor_with_receipts_posts_one_signed_receipt_per_accepted_message(
    spec, fake_fcm, fake_webpush, fake_webhook
):
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    fake_webhook.reset()
    spec["floor_receipts"] = {"url": f"{fake_webhook.url}/hooks/floor", "secret": secret}

    result = bench.floor.run(spec)

    for provider in ("webpush", "fcm"):
        assert result[provider]["ok"] == result[provider]["receipts_ok"] == USERS
    assert_fakes_received(spec, fake_fcm, fake_webpush, copies=1)
    received = fake_webhook.received("/hooks/floor")
    assert len(received) == 2 * USERS
    for receipt in received:
        payload = Webhook(secret).verify(receipt.body, receipt.headers)
        assert payload["status"] == "delivered"
        assert receipt.headers["x-keymaster-signature"] == (
            "sha256=" + hmac.new(secret.encode(), receipt.body, hashlib.sha256).hexdigest()
        )


@pytest.mark.postgres
def test_peer_delivers_every_message_through_django_push_notifications(
    spec, fake_fcm, fake_webpush
):
    db = settings.DATABASES["default"]
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    spec["database_url"] = (
        f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}_bench_test_peer"
    )
    try:
        result = bench.peer.run(spec)
    finally:
        _drop_database(spec["database_url"])

    for provider in ("webpush", "fcm"):
        assert result[provider]["ok"] == result[provider]["answers"] == USERS
    assert result["fake_check"] == {"webpush_delivered": USERS, "fcm_accepted": USERS}
    assert_fakes_received(spec, fake_fcm, fake_webpush, copies=1)
    assert set(result["processes"]) == {"qcluster", "postgres", "app"}
    assert result["processes"]["qcluster"]["cpu_seconds"] > 0
    assert result["processes"]["qcluster"]["peak_rss_mb"] > 0


def _drop_database(url: str) -> None:
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        name = sql.Identifier(parts.path.lstrip("/"))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def test_peer_database_gets_its_own_name():
    assert peer_database_url("postgres://u@h:5432/km") == "postgres://u@h:5432/km_peer"
    assert peer_database_url("postgres://u@h:5432/km_peer") == "postgres://u@h:5432/km_peer"
    with pytest.raises(ValueError, match="database_url"):
        peer_database_url("sqlite:///db.sqlite3")


def test_spec_without_a_required_key_is_refused_by_name():
    spec = {"fcm_url": "http://127.0.0.1:1", "fcm_service_account_file": "sa.json"}
    with pytest.raises(ValueError, match="fcm_tokens"):
        check_spec(spec)


def test_fcm_data_sends_non_string_values_as_json():
    spec = {"data": {"order": "12345", "count": 3, "tags": ["a"]}}
    assert fcm_data(spec) == {"order": "12345", "count": "3", "tags": '["a"]'}
