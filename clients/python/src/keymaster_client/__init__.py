"""Python client for Keymaster's push-notification API.

from keymaster_client import KeymasterClient

km = KeymasterClient(base_url, client_id, client_secret)
notification_id = km.send_push(user_id, "Title", "Body", data={"route": "/x"})

`AsyncKeymasterClient` has the same methods for asyncio; `keymaster` is the command line.
"""

from __future__ import annotations

import warnings
from typing import Any

from keymaster_client._endpoints import DEFAULT_BATCH_SIZE
from keymaster_client._version import __version__
from keymaster_client.aio import AsyncKeymasterClient
from keymaster_client.client import KeymasterClient
from keymaster_client.errors import (
    AuthenticationError,
    IdempotencyConflict,
    KeymasterConnectionError,
    KeymasterError,
    NotCancelable,
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
from keymaster_client.models import (
    Broadcast,
    BroadcastAccepted,
    BroadcastCounts,
    Cancellation,
    Delivery,
    Device,
    DevicePage,
    Message,
    Notification,
    Page,
    Receipt,
    Topic,
    TopicMembers,
)
from keymaster_client.webhooks import verify_webhook

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "AsyncKeymasterClient",
    "AuthenticationError",
    "Broadcast",
    "BroadcastAccepted",
    "BroadcastCounts",
    "Cancellation",
    "Delivery",
    "Device",
    "DevicePage",
    "IdempotencyConflict",
    "KeymasterClient",
    "KeymasterConnectionError",
    "KeymasterError",
    "Message",
    "NotCancelable",
    "NotEnrolled",
    "NotFound",
    "Notification",
    "Page",
    "PayloadTooLarge",
    "PermissionDenied",
    "PushDisabled",
    "QuotaExceeded",
    "RateLimited",
    "Receipt",
    "ServerError",
    "Topic",
    "TopicMembers",
    "ValidationError",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]


def __getattr__(name: str) -> Any:
    # 0.1's name, which shadowed the builtin; kept importable for one release.
    if name == "ConnectionError":
        warnings.warn(
            "keymaster_client.ConnectionError is now KeymasterConnectionError",
            DeprecationWarning,
            stacklevel=2,
        )
        return KeymasterConnectionError
    raise AttributeError(f"module 'keymaster_client' has no attribute {name!r}")
