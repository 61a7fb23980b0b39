"""Python client for Keymaster's push-notification API.

from keymaster_client import KeymasterClient

km = KeymasterClient(base_url, client_id, client_secret)
notification_id = km.send_push(user_id, "Title", "Body", data={"route": "/x"})
"""

from __future__ import annotations

from keymaster_client._version import __version__
from keymaster_client.client import DEFAULT_BATCH_SIZE, KeymasterClient
from keymaster_client.errors import (
    AuthenticationError,
    ConnectionError,
    IdempotencyConflict,
    KeymasterError,
    NotEnrolled,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PushDisabled,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ValidationError,
    WebhookVerificationError,
)
from keymaster_client.models import Delivery, Message, Notification, Receipt
from keymaster_client.webhooks import verify_webhook

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "AuthenticationError",
    "ConnectionError",
    "Delivery",
    "IdempotencyConflict",
    "KeymasterClient",
    "KeymasterError",
    "Message",
    "NotEnrolled",
    "NotFound",
    "Notification",
    "PayloadTooLarge",
    "PermissionDenied",
    "PushDisabled",
    "QuotaExceeded",
    "RateLimited",
    "Receipt",
    "ServerError",
    "ValidationError",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
