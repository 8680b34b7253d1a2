"""Fernet encryption of secrets at rest, with keys from FIELD_ENCRYPTION_KEYS.

Keys are read when first needed, never at import time, so tests can swap them.
In development, with no key configured, a key is derived from SECRET_KEY;
production settings refuse to start without FIELD_ENCRYPTION_KEYS.
"""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTING = "FIELD_ENCRYPTION_KEYS"


class SecretDecryptionError(Exception):
    """A stored secret can't be decrypted with any configured key."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _development_key() -> bytes:
    digest = hashlib.sha256(b"ccbridge-field-encryption:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    raw = list(getattr(settings, SETTING, []) or [])
    if not raw:
        if getattr(settings, "PRODUCTION", False):
            raise ImproperlyConfigured(f"{SETTING} is not set; secrets can't be encrypted or read.")
        raw = [_development_key().decode()]
    keys = []
    for position, key in enumerate(raw, start=1):
        try:
            keys.append(Fernet(key.strip().encode()))
        except (ValueError, TypeError) as exc:
            # Never echo the key itself: it is the secret.
            raise ImproperlyConfigured(
                f"{SETTING}: key #{position} is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from exc
    return MultiFernet(keys)


@receiver(setting_changed)
def _reset_keys(*, setting: str, **kwargs: object) -> None:
    if setting in (SETTING, "SECRET_KEY"):
        _fernet.cache_clear()


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str, *, label: str = "a secret") -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            f"Cannot decrypt {label}: none of the keys in {SETTING} fits it. "
            f"Was the key that encrypted it removed from {SETTING}, or changed?"
        ) from None


def rotate(token: str, *, label: str = "a secret") -> str:
    """Re-encrypt a token under the newest key (the first in the setting)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError(
            f"Cannot rotate {label}: none of the keys in {SETTING} fits it."
        ) from None
