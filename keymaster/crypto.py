"""Secrets at rest: MultiFernet encryption (keys rotate newest-first) and keyed lookup HMACs.

Push tokens, subscriptions, webhook secrets, VAPID private keys and per-app FCM service accounts
are stored through `EncryptedTextField`, so a database dump holds none of them in plaintext.
Finding a token again (dedupe on registration) uses `lookup_hmac`, a separate key's HMAC.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64 bytes each)"
        ) from exc


def _current() -> MultiFernet:
    return _fernet(tuple(settings.TOKEN_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    """Encrypt with the newest key."""
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Decrypt with whichever configured key made the ciphertext."""
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in TOKEN_ENCRYPTION_KEYS: "
            "was a key dropped before `manage.py rotate_encryption_keys` re-encrypted its rows?"
        ) from None


def lookup_hmac(value: str, key: str | None = None) -> str:
    """Return the keyed HMAC-SHA256 (hex) that finds `value` without storing it.

    `key` defaults to TOKEN_LOOKUP_KEY; rotation passes each of TOKEN_LOOKUP_OLD_KEYS.
    """
    secret = (settings.TOKEN_LOOKUP_KEY if key is None else key).encode()
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


class EncryptedTextField(models.TextField):
    """A text field stored as Fernet ciphertext and read back as plaintext."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """Return every (model, field name) stored through EncryptedTextField."""
    from django.apps import apps

    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, EncryptedTextField)
    ]
