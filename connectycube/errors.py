"""Exceptions raised by the ConnectyCube client.

Messages never carry credentials: they name the app, the path and the server's error text only.
"""

from __future__ import annotations

from typing import Any


class ConnectyCubeError(Exception):
    """Report a failed ConnectyCube request (status 0 when no HTTP answer came back)."""

    def __init__(self, status: int, errors: Any = None, message: str = "") -> None:
        self.status = status
        self.errors = errors
        self.message = message or error_text(errors) or f"HTTP {status}"
        super().__init__(self.message)


class AuthError(ConnectyCubeError):
    """The server refused the credentials (bad login, password or auth key)."""


class SessionExpired(ConnectyCubeError):
    """The session token is no longer valid and logging in again did not help."""


class ConnectyCubeTimeout(ConnectyCubeError):
    """The server did not answer in time."""


class ConnectyCubeUnavailable(ConnectyCubeError):
    """The server could not be reached (connection refused, DNS failure, reset)."""


def error_text(errors: Any) -> str:
    """Flatten the server's `errors` value (a list, a dict of lists or a string) to one line."""
    if errors is None:
        return ""
    if isinstance(errors, str):
        return errors
    if isinstance(errors, list):
        return "; ".join(error_text(e) for e in errors if e is not None)
    if isinstance(errors, dict):
        parts = []
        for key, value in errors.items():
            text = error_text(value)
            parts.append(text if key == "base" else f"{key}: {text}")
        return "; ".join(parts)
    return str(errors)
