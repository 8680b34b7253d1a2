"""The edge service: the SIP endpoint Asterisk's ccbridge trunk reaches, the ConnectyCube
accounts of the mappings, and the calls in flight."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from connectycube.call import CallConfig
from connectycube.client import ConnectyCubeAccount
from connectycube.xmpp import ChatState
from mappings.models import SipMapping
from sip.call import ServerInvite
from sip.endpoint import SipEndpoint
from sip.message import SipRequest

from .inbound import InboundCall

logger = logging.getLogger(__name__)


@dataclass
class EdgeConfig:
    sip_host: str = "127.0.0.1"
    sip_port: int = 5070
    public_host: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    media_start_timeout: float = 5.0  # a worker must take the session within this
    media_timeout: float = 10.0  # each command to the worker
    ice_timeout: float = 20.0  # accept -> WebRTC connected


class EdgeEndpoint(SipEndpoint):
    """The SIP endpoint, keeping each CANCEL's Reason header for the call it cancels."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cancel_reasons: dict[str, str] = {}  # Call-ID -> Reason header of its CANCEL

    def _handle_cancel(self, request: SipRequest, tx: Any) -> None:
        # Asterisk says why it cancels (RFC 3326): `SIP;cause=200;text="Call completed
        # elsewhere"` when another phone of the Dial answered.
        self.cancel_reasons[request.call_id] = request.headers.get("Reason") or ""
        super()._handle_cancel(request, tx)


class EdgeService:
    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.redis_url = config.redis_url
        self.media_start_timeout = config.media_start_timeout
        self.media_timeout = config.media_timeout
        self.ice_timeout = config.ice_timeout
        self.endpoint = EdgeEndpoint(config.sip_host, config.sip_port, public_host=config.public_host)
        self.accounts: dict[int, ConnectyCubeAccount] = {}  # mapping pk -> account
        self._account_locks: dict[int, asyncio.Lock] = {}
        self.calls: set[InboundCall] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.endpoint.on_invite = self._on_invite
        await self.endpoint.start()
        logger.info("edge listening for SIP on %s:%s", self.config.sip_host, self.config.sip_port)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for account in self.accounts.values():
            await account.close()
        await self.endpoint.close()

    # --- calls ------------------------------------------------------------------------------

    def _on_invite(self, invite: ServerInvite) -> None:
        call = InboundCall(self, invite)
        self.calls.add(call)
        task = asyncio.create_task(call.run(), name=repr(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, call: InboundCall) -> None:
        self.calls.discard(call)

    async def start_media(self, session_id: str, prefer_opus: bool) -> None:
        """Hand a media session to some worker (Celery, queue `media`)."""
        from media.tasks import start_session

        await asyncio.to_thread(start_session.apply_async, args=[session_id, prefer_opus], queue="media")

    # --- ConnectyCube accounts --------------------------------------------------------------

    async def account_for(self, mapping: SipMapping) -> ConnectyCubeAccount:
        """The mapping's account, logged in and online on chat (once, then reused)."""
        lock = self._account_locks.setdefault(mapping.pk, asyncio.Lock())
        async with lock:
            account = self.accounts.get(mapping.pk)
            if account is not None and account.chat is not None and account.chat.state == ChatState.ONLINE:
                return account
            if account is not None:
                await account.close()
            app, password = await sync_to_async(_credentials)(mapping)
            account = ConnectyCubeAccount(
                app,
                mapping.cc_login,
                password,
                call_config=CallConfig(ice_timeout=self.ice_timeout, ring_timeout=float(mapping.ring_timeout) + 5),
                on_system_message=self._on_system_message,
            )
            await account.start()
            self.accounts[mapping.pk] = account
            logger.info("edge: %r online for %s", account, mapping.sip_uri)
            return account

    def _on_system_message(self, from_user: int, fields: dict[str, str]) -> None:
        kind, session_id = fields.get("type"), fields.get("sessionID", "")
        for call in list(self.calls):
            if kind == "dtmf" and fields.get("digit"):
                call.app_dtmf(session_id, fields["digit"][:1])
            elif kind in ("hold", "unhold", "transfer"):
                call.app_control(session_id, kind, fields)


def _credentials(mapping: SipMapping) -> tuple[Any, str]:
    return mapping.app.config(), mapping.cc_password.reveal() if mapping.cc_password else ""
