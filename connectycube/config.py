"""ConnectyCube application configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_API_URL = "https://api.connectycube.com"
DEFAULT_CHAT_URL = "wss://chat.connectycube.com:5291"
DEFAULT_CHAT_DOMAIN = "chat.connectycube.com"


@dataclass(frozen=True)
class AppConfig:
    """Identify one ConnectyCube application and the endpoints it lives on."""

    app_id: int
    auth_key: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    chat_url: str = DEFAULT_CHAT_URL
    # The JID domain; it need not match the WebSocket host (see protocol doc section 2).
    chat_domain: str = DEFAULT_CHAT_DOMAIN
    # Only for legacy apps that still require HMAC-SHA1 signed sessions (SDK <= 3.x).
    auth_secret: str | None = field(default=None, repr=False)
