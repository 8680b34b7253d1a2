"""System checks that catch a misconfigured deployment at startup."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_encryption_keys(app_configs: Any, **kwargs: Any) -> list:
    from . import crypto

    try:
        crypto._fernet()
    except Exception as exc:  # ImproperlyConfigured with a message naming the setting
        return [Error(str(exc), id="mappings.E001")]
    if not settings.FIELD_ENCRYPTION_KEYS and not settings.PRODUCTION:
        return [
            Warning(
                "FIELD_ENCRYPTION_KEYS is not set; secrets are encrypted with a key derived "
                "from SECRET_KEY. Set it before storing real credentials.",
                id="mappings.W001",
            )
        ]
    return []
