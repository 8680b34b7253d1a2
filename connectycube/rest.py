"""Async ConnectyCube REST client (aiohttp), speaking the wire format of the official JS SDK 6.x.

Paths carry the `.json` suffix and requests the `CB-SDK`/`CB-Token` headers, like the SDK
(protocol doc section 3.1). A request that meets an expired session logs in again and is retried once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp

from .config import AppConfig
from .errors import (
    AuthError,
    ConnectyCubeError,
    ConnectyCubeTimeout,
    ConnectyCubeUnavailable,
    SessionExpired,
    error_text,
)

logger = logging.getLogger(__name__)

SDK_HEADER = "Python ccbridge 1.0 - Client"
# Receivers ignore `platform`; "web" is a value the server already knows from the JS SDK.
PLATFORM = "web"
SESSION_MISSING = "Required session does not exist"
JSON_CONTENT_TYPE = "application/json;charset=utf-8"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=UTF-8"


@dataclass
class Session:
    """A ConnectyCube session as returned by `POST /session.json`."""

    token: str = field(repr=False)
    user_id: int
    application_id: int
    user: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Credentials:
    login: str | None
    email: str | None
    password: str | None = field(repr=False)


def signature_string(params: Mapping[str, Any]) -> str:
    """Return the legacy (SDK <= 3.x) string to sign: sorted `k=v` parts, nested dicts as `k[k2]=v2`.

    Values are not URL-encoded, as in the old SDK.
    """
    parts = []
    for key, value in params.items():
        if isinstance(value, Mapping):
            parts.append("&".join(sorted(f"{key}[{k2}]={v2}" for k2, v2 in value.items())))
        else:
            parts.append(f"{key}={value}")
    return "&".join(sorted(parts))


def sign(params: Mapping[str, Any], auth_secret: str) -> str:
    """Return the hex HMAC-SHA1 of `signature_string(params)` keyed by the app's auth secret."""
    msg = signature_string(params).encode()
    return hmac.new(auth_secret.encode(), msg, hashlib.sha1).hexdigest()


def session_body(
    app: AppConfig,
    credentials: _Credentials | None,
    *,
    nonce: int | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """Build the `POST /session.json` body; signed when the app has an auth secret."""
    body: dict[str, Any] = {"application_id": app.app_id, "auth_key": app.auth_key}
    if credentials is not None:
        user: dict[str, Any] = {}
        if credentials.login is not None:
            user["login"] = credentials.login
        else:
            user["email"] = credentials.email
        user["password"] = credentials.password
        body["user"] = user
    if app.auth_secret:
        body["nonce"] = secrets.randbelow(10000) if nonce is None else nonce
        body["timestamp"] = int(time.time()) if timestamp is None else timestamp
        body["signature"] = sign(body, app.auth_secret)
    return body


def _is_session_missing(status: int, data: Any) -> bool:
    if status != 401 or not isinstance(data, dict):
        return False
    errors = data.get("errors")
    if isinstance(errors, dict):
        base = errors.get("base")
        return isinstance(base, list) and bool(base) and base[0] == SESSION_MISSING
    return False


class RestClient:
    """Talk to the ConnectyCube REST API as one user (or as the application alone)."""

    def __init__(
        self,
        app: AppConfig,
        *,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        sdk_header: str = SDK_HEADER,
    ) -> None:
        self.app = app
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http = session
        self._own_http = session is None
        self._sdk_header = sdk_header
        self._credentials: _Credentials | None = None
        self._logged_in = False
        self._lock = asyncio.Lock()
        self.session: Session | None = None

    def __repr__(self) -> str:
        user = self.session.user_id if self.session else None
        return f"<RestClient app={self.app.app_id} api={self.app.api_url} user={user}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it (idempotent)."""
        if self._own_http and self._http is not None:
            await self._http.close()
        self._http = None

    @property
    def token(self) -> str | None:
        return self.session.token if self.session else None

    # -- auth -------------------------------------------------------------------------------

    async def create_session(
        self, login: str | None = None, email: str | None = None, password: str | None = None
    ) -> Session:
        """Create a user session (login or email plus password), or an application session."""
        if login is not None or email is not None:
            if password is None:
                raise ValueError("a password is required with a login or email")
            credentials: _Credentials | None = _Credentials(login, email, password)
        else:
            credentials = None
        self._credentials = credentials
        self._logged_in = True
        async with self._lock:
            return await self._create_session()

    async def _create_session(self) -> Session:
        body = session_body(self.app, self._credentials)
        status, data = await self._send("POST", "session", json_body=body, token=None)
        if status in (401, 403, 404, 422):
            errors = data.get("errors") if isinstance(data, dict) else data
            reason = error_text(errors) or f"HTTP {status}"
            raise AuthError(
                status, errors, f"ConnectyCube refused the login for app {self.app.app_id}: {reason}"
            )
        self._raise_for_status("POST", "session", status, data)
        try:
            raw = data["session"]
            session = Session(
                token=str(raw["token"]),
                user_id=int(raw.get("user_id") or 0),
                application_id=int(raw.get("application_id") or self.app.app_id),
                user=dict(raw.get("user") or {}),
            )
        except (KeyError, TypeError, ValueError):
            raise ConnectyCubeError(
                status, None, "ConnectyCube answered POST /session.json without a session"
            ) from None
        self.session = session
        logger.info("ConnectyCube session created for app %s user %s", self.app.app_id,
                    session.user_id)
        return session

    async def destroy_session(self) -> None:
        """Destroy the current session on the server and forget it locally."""
        if self.session is None:
            return
        try:
            await self._request("DELETE", "session", text=True, relogin=False)
        finally:
            self.session = None
            self._logged_in = False

    async def get_session(self) -> dict[str, Any]:
        """Return the server's view of the current session."""
        data = await self._request("GET", "session")
        return data.get("session", data)

    # -- users ------------------------------------------------------------------------------

    async def get_user(self, user_id: int) -> dict[str, Any]:
        """Return one user's record."""
        data = await self._request("GET", f"users/{int(user_id)}")
        return data.get("user", data)

    async def list_users(self, ids: list[int]) -> list[dict[str, Any]]:
        """Return the users with the given ids (`GET /users/v2.json?id[in][]=…`)."""
        params = [("id[in][]", str(int(i))) for i in ids]
        params.append(("limit", str(max(len(ids), 1))))
        data = await self._request("GET", "users/v2", params=params)
        items = data.get("items", []) if isinstance(data, dict) else []
        return [item.get("user", item) if isinstance(item, dict) else item for item in items]

    # -- push and calls ---------------------------------------------------------------------

    async def create_event(
        self,
        user_ids: list[int],
        message_payload: Mapping[str, Any],
        *,
        environment: str = "development",
    ) -> list[dict[str, Any]]:
        """Send a push event to users; the payload travels as base64 JSON (section 3.6)."""
        message = base64.b64encode(json.dumps(message_payload).encode()).decode()
        body = {
            "event": {
                "notification_type": "push",
                "user": {"ids": [int(i) for i in user_ids]},
                "environment": environment,
                "message": message,
            }
        }
        data = await self._request("POST", "events", json_body=body)
        return data if isinstance(data, list) else [data]

    async def call_reject(
        self, session_id: str, recipient_id: int, user_info: Mapping[str, Any] | None = None
    ) -> None:
        """Reject a call over HTTP, for when chat is not connected (section 3.7)."""
        body = {
            "sessionID": session_id,
            "recipientId": int(recipient_id),
            "platform": PLATFORM,
            "userInfo": dict(user_info or {}),
        }
        await self._request("POST", "calls/reject", json_body=body)

    # -- transport --------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: list[tuple[str, str]] | None = None,
        text: bool = False,
        relogin: bool = True,
    ) -> Any:
        token = self.token
        status, data = await self._send(method, path, json_body=json_body, params=params,
                                        token=token, text=text)
        if _is_session_missing(status, data) and relogin and self._logged_in:
            async with self._lock:
                # Another request may already have logged in again while this one waited.
                if self.token == token:
                    logger.info("ConnectyCube session expired for app %s; logging in again",
                                self.app.app_id)
                    await self._create_session()
            status, data = await self._send(method, path, json_body=json_body, params=params,
                                            token=self.token, text=text)
        if _is_session_missing(status, data):
            raise SessionExpired(status, data.get("errors"),
                                 f"ConnectyCube session expired for app {self.app.app_id}")
        self._raise_for_status(method, path, status, data)
        return data

    def _raise_for_status(self, method: str, path: str, status: int, data: Any) -> None:
        if 200 <= status < 300:
            return
        errors = data.get("errors") if isinstance(data, dict) else data
        reason = error_text(errors) or f"HTTP {status}"
        raise ConnectyCubeError(status, errors, f"ConnectyCube {method} /{path}.json: {reason}")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: list[tuple[str, str]] | None = None,
        token: str | None,
        text: bool = False,
    ) -> tuple[int, Any]:
        """Send one request; return (status, parsed body). Map transport failures to errors."""
        if self._http is None:
            if not self._own_http:
                raise ConnectyCubeError(0, None, "the HTTP session given to RestClient is closed")
            self._http = aiohttp.ClientSession()
        url = f"{self.app.api_url.rstrip('/')}/{path}.json"
        headers = {"CB-SDK": self._sdk_header}
        if token:
            headers["CB-Token"] = token
        data: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = JSON_CONTENT_TYPE
            data = json.dumps(json_body).encode()
        else:
            headers["Content-Type"] = FORM_CONTENT_TYPE
        try:
            async with self._http.request(
                method, url, data=data, params=params, headers=headers, timeout=self._timeout
            ) as resp:
                status = resp.status
                body = await resp.text()
        except TimeoutError:
            raise ConnectyCubeTimeout(
                0, None, f"ConnectyCube {method} /{path}.json timed out ({self.app.api_url})"
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise ConnectyCubeUnavailable(
                0, None, f"ConnectyCube unreachable at {self.app.api_url}: {exc}"
            ) from None
        logger.debug("ConnectyCube %s /%s.json -> %s", method, path, status)
        if text and 200 <= status < 300:
            return status, body
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
            if 200 <= status < 300:
                raise ConnectyCubeError(
                    status, None, f"ConnectyCube {method} /{path}.json answered non-JSON"
                ) from None
        return status, parsed
