"""Check an FCM service-account key before Keymaster uploads it or signs with it.

The key's `token_uri` is where google-auth POSTs its signed assertion for an access token, so
an app admin who uploads a key chooses a URL our workers request: it must be Google's token
endpoint, or a host the operator opened in `OUTBOUND_ALLOWED_HOSTS` (the local fakes). Checked
at upload (with the key itself: it parses, it is RSA, it signs) and again each time a
credential is used, so a key stored before this check or a narrowed allowlist still holds.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from yarl import URL

from push.outbound import OutboundPolicy, OutboundRefused, parse_ip_literal
from push.transports.base import Outcome, OutcomeKind

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
REQUIRED_FIELDS = ("type", "project_id", "private_key", "client_email", "token_uri")
# The error a delivery and the app's `last_error` carry when its key cannot be used.
CREDENTIAL_INVALID = "fcm_credential_invalid"


class ServiceAccountRefused(ValueError):
    """A service-account key Keymaster will not use; `reason` says why, without the key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def token_uri_check(token_uri: Any, policy: OutboundPolicy) -> None:
    """Refuse a token_uri that is neither Google's endpoint nor an allowlisted test host."""
    if token_uri == GOOGLE_TOKEN_URI:
        return
    refused = ServiceAccountRefused(f"token_uri must be {GOOGLE_TOKEN_URI}")
    if not isinstance(token_uri, str):
        raise refused
    try:
        policy.check_url(token_uri, resolve=False)
        host = URL(token_uri).raw_host or ""
        ip = parse_ip_literal(host)
    except (OutboundRefused, ValueError, TypeError):
        raise refused from None
    if not (policy.allows_host(host) or (ip is not None and policy.allows_address(ip))):
        raise refused


def service_account_check(info: Any, policy: OutboundPolicy) -> None:
    """Refuse a service-account dict that is incomplete, not RSA, cannot sign, or aims elsewhere."""
    if not isinstance(info, dict):
        raise ServiceAccountRefused("Must be a JSON object.")
    missing = [name for name in REQUIRED_FIELDS if not info.get(name)]
    if missing or info.get("type") != "service_account":
        names = ", ".join(missing) or "type"
        raise ServiceAccountRefused(f"Not a service account key file (missing: {names}).")
    token_uri_check(info["token_uri"], policy)
    private_key_check(info["private_key"])


def private_key_check(pem: str) -> None:
    """Refuse a private key that does not parse, is not RSA, or whose signature does not verify."""
    try:
        key = serialization.load_pem_private_key(str(pem).encode(), password=None)
    except (ValueError, TypeError, UnicodeError):
        raise ServiceAccountRefused("private_key is not a readable PEM private key.") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ServiceAccountRefused("private_key must be an RSA key (Google signs with RS256).")
    probe = b"keymaster service account check"
    try:
        signature = key.sign(probe, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature):
        raise ServiceAccountRefused("private_key cannot sign.") from None


def credential_refused_outcome(exc: Exception) -> Outcome:
    """The outcome of an FCM delivery whose app key cannot be used: failed, config error."""
    reason = exc.reason if isinstance(exc, ServiceAccountRefused) else "the key does not load"
    return Outcome(
        OutcomeKind.FAILED,
        CREDENTIAL_INVALID,
        f"FCM service account unusable: {reason}"[:200],
        misconfigured=True,
    )
