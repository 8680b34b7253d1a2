"""System checks of the agent app."""

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


@register()
def check_connectycube_sdk(app_configs: Any, **kwargs: Any) -> list:
    """Warn when the official ConnectyCube JS SDK the agent app loads is not installed."""
    sdk = settings.CONNECTYCUBE_SDK_DIR / "connectycube.min.js"
    if sdk.is_file():
        return []
    return [
        Warning(
            f"The ConnectyCube JS SDK is missing ({sdk}); the agent app at /agent/ cannot load it.",
            hint="Run `npm ci` in the project root (scripts/setup.sh does).",
            id="agent.W001",
        )
    ]
