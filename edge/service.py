"""The edge service: the SIP endpoint Asterisk's ccbridge trunk reaches, the ConnectyCube
accounts of the mappings (the call machine's `Accounts` port), and the calls in flight."""

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

from .call import BridgedCall
from .media import WorkerMedia
from .ports import Route
from .recorder import CallRecorder

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


async def start_on_celery(session_id: str, prefer_opus: bool) -> None:
    """Hand a media session to some worker (Celery, queue `media`)."""
    from media.tasks import start_session  # loads the Celery app: only in the edge process

    await asyncio.to_thread(start_session.apply_async, args=[session_id, prefer_opus], queue="media")


class EdgeService:
    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.ice_timeout = config.ice_timeout
        self.endpoint = SipEndpoint(config.sip_host, config.sip_port, public_host=config.public_host)
        self.media = WorkerMedia(
            config.redis_url, start_on_celery, start_timeout=config.media_start_timeout, timeout=config.media_timeout
        )
        self.accounts: dict[int, ConnectyCubeAccount] = {}  # mapping pk -> account
        self._account_locks: dict[int, asyncio.Lock] = {}
        self.calls: set[BridgedCall] = set()
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
        call = BridgedCall(
            invite,
            records=CallRecorder(invite.request.call_id),
            accounts=self,
            media=self.media,
            ice_timeout=self.ice_timeout,
        )
        self.calls.add(call)
        task = asyncio.create_task(call.run(), name=repr(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self.calls.discard(call))

    # --- ConnectyCube accounts --------------------------------------------------------------

    async def account_for(self, route: Route) -> ConnectyCubeAccount:
        """The route's account, logged in and online on chat (once, then reused)."""
        lock = self._account_locks.setdefault(route.key, asyncio.Lock())
        async with lock:
            account = self.accounts.get(route.key)
            if account is not None and account.chat is not None and account.chat.state == ChatState.ONLINE:
                return account
            if account is not None:
                await account.close()
            app, login, password = await sync_to_async(_credentials)(route.key)
            account = ConnectyCubeAccount(
                app,
                login,
                password,
                call_config=CallConfig(ice_timeout=self.ice_timeout, ring_timeout=route.ring_timeout + 5),
                on_system_message=self._on_system_message,
            )
            await account.start()
            self.accounts[route.key] = account
            logger.info("edge: %r online for %s", account, route.sip_uri)
            return account

    def _on_system_message(self, from_user: int, fields: dict[str, str]) -> None:
        """DTMF, hold, resume or transfer from an agent app, for the call of its session."""
        session_id = fields.get("sessionID", "")
        for call in list(self.calls):
            call.app_message(session_id, fields)


def _credentials(mapping_pk: int) -> tuple[Any, str, str]:
    mapping = SipMapping.objects.select_related("app").get(pk=mapping_pk)
    return mapping.app.config(), mapping.cc_login, mapping.cc_password.reveal() if mapping.cc_password else ""
