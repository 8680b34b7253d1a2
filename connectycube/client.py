"""A ConnectyCube account: REST session + chat + P2P calls, the way an SDK app is online.

Many accounts can live in one process and each can carry several calls at once; calls are kept
by session id and routed from the chat's headline messages.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape

import aiohttp

from .call import CallConfig, P2PCall, P2PCallState
from .config import AppConfig
from .peer import Peer
from .rest import RestClient
from .signalling import Signal, SignalType, decode_extra_params, encode_message
from .stanza import (
    NS_CARBONS,
    NS_CLIENT,
    NS_DELAY,
    NS_FORWARD,
    new_id,
    qname,
    user_id_from_jid,
)
from .xmpp import XmppClient

logger = logging.getLogger(__name__)

IncomingCallHandler = Callable[[P2PCall], Awaitable[None] | None]
# (from user id, the <extraParams> fields as text) of a `SystemNotifications` headline message.
SystemMessageHandler = Callable[[int, dict[str, str]], Awaitable[None] | None]


class ConnectyCubeAccount:
    """One user logged in to one ConnectyCube app, online on chat and able to call."""

    def __init__(
        self,
        app: AppConfig,
        login: str,
        password: str,
        *,
        call_config: CallConfig | None = None,
        on_incoming_call: IncomingCallHandler | None = None,
        on_system_message: SystemMessageHandler | None = None,
        chat_with_token: bool = False,
        rest_timeout: float = 10.0,
        chat_options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.login = login
        self.__password = password
        self.call_config = call_config or CallConfig()
        self.on_incoming_call = on_incoming_call
        self.on_system_message = on_system_message
        self.chat_with_token = chat_with_token
        self.rest_timeout = rest_timeout
        self._chat_options = dict(chat_options or {})
        self._http: aiohttp.ClientSession | None = None
        self.rest: RestClient | None = None
        self.chat: XmppClient | None = None
        self.user_id: int | None = None
        self.calls: dict[str, P2PCall] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # Signals are handled one at a time, in arrival order (accept before its candidates).
        self._signals: asyncio.Queue[tuple[Signal, int]] = asyncio.Queue()
        self._signal_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<ConnectyCubeAccount app={self.app.app_id} login={self.login} user={self.user_id}>"

    async def start(self) -> None:
        """Log in over REST, then connect chat; raise AuthError on bad credentials."""
        self._http = aiohttp.ClientSession()
        try:
            self.rest = RestClient(self.app, session=self._http, timeout=self.rest_timeout)
            session = await self.rest.create_session(login=self.login, password=self.__password)
            self.user_id = session.user_id
            secret = session.token if self.chat_with_token else self.__password
            self.chat = XmppClient(
                self.app.chat_url, self.app.chat_domain, session.user_id, self.app.app_id, secret,
                session=self._http, **self._chat_options,
            )
            self.chat.add_message_handler(self._on_message)
            await self.chat.connect()
        except BaseException:
            await self._http.close()
            raise
        self._signal_task = asyncio.create_task(self._signal_loop())

    async def close(self) -> None:
        """Hang up every call, leave chat and end the REST session (idempotent)."""
        for call in list(self.calls.values()):
            await call.hangup({"reason": "closing"})
        if self.chat is not None:
            await self.chat.close()
        if self._signal_task is not None:
            self._signal_task.cancel()
            self._signal_task = None
        for task in list(self._tasks):
            task.cancel()
        if self.rest is not None and self.rest.session is not None:
            try:
                await self.rest.destroy_session()
            except Exception as exc:
                logger.info("%r: could not destroy the session: %s", self, exc)
        if self._http is not None:
            await self._http.close()

    # -- calls --------------------------------------------------------------------------------

    async def place_call(
        self,
        user_ids: Sequence[int],
        call_type: int,
        user_info: dict[str, Any] | None = None,
        setup: Callable[[P2PCall], Awaitable[None] | None] | None = None,
    ) -> list[P2PCall]:
        """Ring each user in its own 1:1 call session and return the calls.

        Separate sessions (not one SDK group session) let the first to accept win and the
        others be hung up. `setup(call)` runs before the offer, so the media layer can add its
        tracks to `call.pc`; audio (and video for video calls) is added if it did not.
        """
        calls = []
        for user_id in user_ids:
            call = self.new_call(int(user_id), call_type, user_info)
            if setup is not None:
                result = setup(call)
                if inspect.isawaitable(result):
                    await result
            await call.start()
            calls.append(call)
        return calls

    def new_call(self, user_id: int, call_type: int, user_info: dict[str, Any] | None = None,
                 peer: Peer | None = None) -> P2PCall:
        """Return an outgoing call to one user, tracked by this account; `start()` rings it."""
        assert self.user_id is not None, "start() the account first"
        call = P2PCall.outgoing(self, self.user_id, user_id, call_type, self.call_config, user_info,
                                peer=peer)
        self._track(call)
        return call

    async def send_system_message(self, user_id: int, fields: dict[str, str], body: str = "") -> None:
        """Send a `SystemNotifications` headline (the SDK's chat.sendSystemMessage)."""
        assert self.chat is not None
        extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items() if k.isidentifier())
        to = f"{user_id}-{self.app.app_id}@{self.app.chat_domain}"
        await self.chat.send(
            f'<message to="{to}" type="headline" id="{new_id()}" xmlns="jabber:client">'
            f"<body>{escape(body)}</body><extraParams xmlns=\"jabber:client\">"
            f"<moduleIdentifier>SystemNotifications</moduleIdentifier>{extra}</extraParams></message>"
        )

    def _track(self, call: P2PCall) -> None:
        self.calls[call.session_id] = call
        call.on("closed", lambda reason: self.calls.pop(call.session_id, None))

    async def send_signal(self, user_id: int, signal: Signal) -> None:
        """Send a call signal to the user's bare JID (the SDK addresses signals that way)."""
        assert self.chat is not None
        to = f"{user_id}-{self.app.app_id}@{self.app.chat_domain}"
        await self.chat.send(encode_message(signal, to, new_id()))

    # -- chat ---------------------------------------------------------------------------------

    def _on_message(self, message: ET.Element, raw: str) -> None:
        if message.get("type") != "headline" and message.find(qname(NS_CARBONS, "sent")) is None:
            return
        sender = message.get("from", "")
        carbon = message.find(f"{qname(NS_CARBONS, 'sent')}/{qname(NS_FORWARD, 'forwarded')}")
        if carbon is not None:
            # Our own signal sent from another device; only trust it from our own bare JID.
            inner = carbon.find(qname(NS_CLIENT, "message"))
            if inner is None or user_id_from_jid(sender) != self.user_id:
                return
            message, sender = inner, inner.get("from", sender)
        if message.find(qname(NS_DELAY, "delay")) is not None:
            return  # stored offline signals are stale (the SDK ignores them too)
        extra = message.find(qname(NS_CLIENT, "extraParams"))
        if extra is None:
            return
        module = extra.find(qname(NS_CLIENT, "moduleIdentifier"))
        if module is not None and module.text == "SystemNotifications":
            self._on_system_message(sender, extra)
            return
        try:
            signal = decode_extra_params(extra)
        except ValueError as exc:
            logger.warning("%r: dropping a malformed signal from %s: %s", self, sender, exc)
            return
        from_user = user_id_from_jid(sender)
        if signal is None or from_user is None:
            return
        self._signals.put_nowait((signal, from_user))

    def _on_system_message(self, sender: str, extra: ET.Element) -> None:
        from_user = user_id_from_jid(sender)
        if self.on_system_message is None or from_user is None:
            return
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in extra}
        fields.pop("moduleIdentifier", None)
        result = self.on_system_message(from_user, fields)
        if inspect.isawaitable(result):
            self._spawn(result)

    async def _signal_loop(self) -> None:
        while True:
            signal, from_user = await self._signals.get()
            try:
                await self._on_signal(signal, from_user)
            except Exception:
                logger.exception("%r: failed to handle %s", self, signal.signal_type)

    async def _on_signal(self, signal: Signal, from_user: int) -> None:
        call = self.calls.get(signal.session_id)
        if call is not None:
            await call.handle_signal(signal, from_user)
            return
        if signal.signal_type != SignalType.CALL or from_user == self.user_id:
            return
        if self.user_id not in (signal.opponents_ids or [self.user_id]):
            return
        assert self.user_id is not None
        call = P2PCall.incoming(self, self.user_id, signal, self.call_config)
        self._track(call)
        logger.info("%r: incoming call %s from %s", self, call.session_id, from_user)
        if self.on_incoming_call is None:
            await call.reject({"busy": True})
            return
        # The handler may wait for a human; run it aside so later signals still flow.
        self._spawn(self._run_incoming_handler(call))

    async def _run_incoming_handler(self, call: P2PCall) -> None:
        assert self.on_incoming_call is not None
        try:
            result = self.on_incoming_call(call)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("%r: the incoming call handler failed", self)
            await call.hangup({"reason": "error"})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def active_calls(self) -> list[P2PCall]:
        """Return the calls that are not closed."""
        return [c for c in self.calls.values() if c.state != P2PCallState.CLOSED]
