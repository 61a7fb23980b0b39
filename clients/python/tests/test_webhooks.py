"""verify_webhook against receipts signed as Keymaster does, checked with standardwebhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from keymaster_client import WebhookVerificationError, verify_webhook

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 24).decode()
RECEIPT = {
    "notification_id": "n-1",
    "user_id": "u-1",
    "device_id": "d-1",
    "app_id": "app-1",
    "status": "delivered",
    "error": None,
    "timestamp": "2026-03-17T12:00:00Z",
}
BODY = json.dumps(RECEIPT).encode()
NOW = 1_773_748_800  # 2026-03-17T12:00:00Z


def sign(
    body: bytes = BODY, *, secret: str = SECRET, timestamp: int = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    """Return the headers Keymaster sends with a receipt: its own and Standard Webhooks'."""
    signed_at = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return {
        "X-Keymaster-Signature": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(msg_id, signed_at, body.decode()),
    }


def test_correctly_signed_receipt_is_returned_parsed() -> None:
    assert verify_webhook(BODY, sign(), SECRET, now=NOW) == RECEIPT


def test_standardwebhooks_accepts_what_verify_webhook_accepts() -> None:
    headers = sign(timestamp=int(time.time()))

    assert verify_webhook(BODY, headers, SECRET) == Webhook(SECRET).verify(BODY, headers)


def test_keymaster_signature_alone_is_refused_by_default() -> None:
    # A receipt captured once and replayed with only the guide's header, whatever its age.
    headers = {"X-Keymaster-Signature": sign()["X-Keymaster-Signature"]}

    with pytest.raises(WebhookVerificationError, match="missing Standard Webhooks headers"):
        verify_webhook(BODY, headers, SECRET, now=NOW + 86_400)


def test_keymaster_signature_alone_is_accepted_only_when_asked() -> None:
    headers = {"X-Keymaster-Signature": sign()["X-Keymaster-Signature"]}

    assert verify_webhook(BODY, headers, SECRET, accept_keymaster_signature_alone=True) == RECEIPT


def test_the_standard_headers_are_checked_even_when_the_guides_header_is_accepted() -> None:
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(BODY, sign(), SECRET, now=NOW + 301, accept_keymaster_signature_alone=True)


def test_standard_headers_alone_are_enough() -> None:
    headers = sign()
    del headers["X-Keymaster-Signature"]

    assert verify_webhook(BODY, headers, SECRET, now=NOW) == RECEIPT


@pytest.mark.parametrize("held", [[SECRET], [OTHER_SECRET], [OTHER_SECRET, SECRET]])
def test_during_a_rotation_either_secret_verifies(held: list[str]) -> None:
    # Keymaster signs with the new and the replaced secret during the overlap.
    headers = sign()
    headers["webhook-signature"] += " " + sign(secret=OTHER_SECRET)["webhook-signature"]

    assert verify_webhook(BODY, headers, held, now=NOW) == RECEIPT


def test_the_guides_header_may_match_any_of_several_secrets() -> None:
    headers = {"X-Keymaster-Signature": sign(secret=OTHER_SECRET)["X-Keymaster-Signature"]}

    verified = verify_webhook(
        BODY, headers, [SECRET, OTHER_SECRET], accept_keymaster_signature_alone=True
    )
    assert verified == RECEIPT


def test_header_names_are_case_insensitive() -> None:
    headers = {name.upper(): value for name, value in sign().items()}

    assert verify_webhook(BODY, headers, SECRET, now=NOW) == RECEIPT


def test_any_of_several_signatures_may_match_during_secret_rotation() -> None:
    headers = sign()
    old = sign(secret=OTHER_SECRET)["webhook-signature"]
    headers["webhook-signature"] = f"v1a,ignored {old} {headers['webhook-signature']}"

    assert verify_webhook(BODY, headers, SECRET, now=NOW) == RECEIPT


def test_tampered_body_is_rejected() -> None:
    tampered = BODY.replace(b"delivered", b"failed")
    headers = {"X-Keymaster-Signature": sign()["X-Keymaster-Signature"]}

    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(tampered, sign(), SECRET, now=NOW)
    with pytest.raises(WebhookVerificationError, match="X-Keymaster-Signature does not match"):
        verify_webhook(tampered, headers, SECRET, accept_keymaster_signature_alone=True)


def test_tampered_body_is_rejected_by_the_standard_signature_too() -> None:
    tampered = BODY.replace(b"delivered", b"failed")
    headers = sign()
    headers["X-Keymaster-Signature"] = sign(tampered)["X-Keymaster-Signature"]

    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(tampered, headers, SECRET, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(BODY, sign(), OTHER_SECRET, now=NOW)


def test_standard_signature_made_with_another_secret_is_rejected() -> None:
    headers = sign()
    headers["webhook-signature"] = sign(secret=OTHER_SECRET)["webhook-signature"]

    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(BODY, headers, SECRET, now=NOW)


def test_signed_id_and_timestamp_cannot_be_swapped() -> None:
    headers = sign()
    headers["webhook-id"] = "msg_2"

    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("age", "reason"), [(301, "too old"), (-301, "in the future")], ids=["stale", "future"]
)
def test_timestamp_outside_tolerance_is_rejected(age: int, reason: str) -> None:
    with pytest.raises(WebhookVerificationError, match=reason):
        verify_webhook(BODY, sign(timestamp=NOW - age), SECRET, now=NOW)


def test_timestamp_within_a_custom_tolerance_is_accepted() -> None:
    headers = sign(timestamp=NOW - 500)

    assert verify_webhook(BODY, headers, SECRET, tolerance=600, now=NOW) == RECEIPT


def test_no_signature_at_all_is_rejected_even_when_the_guides_header_is_accepted() -> None:
    with pytest.raises(WebhookVerificationError, match="missing X-Keymaster-Signature"):
        verify_webhook(BODY, {}, SECRET, accept_keymaster_signature_alone=True)


def test_incomplete_standard_headers_are_rejected() -> None:
    headers = sign()
    del headers["webhook-signature"]

    with pytest.raises(WebhookVerificationError, match="incomplete Standard Webhooks headers"):
        verify_webhook(BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize(
    "header",
    ["md5=abc", "sha256=", "sha256=zz\u00e9", "deadbeef"],
    ids=["other-scheme", "empty", "non-ascii", "no-scheme"],
)
def test_malformed_keymaster_signature_is_rejected(header: str) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(
            BODY,
            {"X-Keymaster-Signature": header},
            SECRET,
            accept_keymaster_signature_alone=True,
        )


def test_signed_body_that_is_not_a_json_object_is_rejected() -> None:
    body = b"[1, 2]"

    with pytest.raises(WebhookVerificationError, match="not a JSON object"):
        verify_webhook(body, sign(body), SECRET, now=NOW)
