"""ConnectyCube chat: an XMPP-over-WebSocket (RFC 7395) client on aiohttp.

It logs in as the official SDK does (see `connectycube.xmpp_login`). On top it keeps the link
alive with its own XEP-0199 pings (the SDK has none) and reconnects with capped exponential
backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp

from common.backoff import Backoff

from .errors import AuthError, ConnectyCubeTimeout, ConnectyCubeUnavailable
from .stanza import (
    MAX_FRAME,
    NS_CLIENT,
    NS_FRAMING,
    NS_PING,
    NS_STANZAS,
    escape_attr,
    local_name,
    new_id,
    parse_frame,
    qname,
)
from .xmpp_login import login

logger = logging.getLogger(__name__)

MessageHandler = Callable[[ET.Element, str], Awaitable[None] | None]
StateListener = Callable[["ChatState"], None]


class ChatState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class ChatNotConnected(ConnectionError):
    """Raised by `send` while the stream is not online."""


class XmppClient:
    """One chat connection for one ConnectyCube user."""

    def __init__(
        self,
        url: str,
        domain: str,
        user_id: int,
        app_id: int,
        password: str,
        *,
        connect_timeout: float = 10.0,
        keepalive_interval: float = 30.0,
        ping_timeout: float = 10.0,
        reconnect: bool = True,
        backoff_initial: float = 1.0,  # reconnect delays: full jitter up to initial * 2**n ...
        backoff_max: float = 30.0,  # ... capped here
        max_frame: int = MAX_FRAME,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url
        self.domain = domain
        self.user_id = user_id
        self.app_id = app_id
        self.__password = password
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.ping_timeout = ping_timeout
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._backoff = Backoff(backoff_initial, backoff_max)  # a bad pair fails here, not in the loop
        self.max_frame = max_frame
        self.jid: str | None = None
        self.state = ChatState.NEW
        self._http = session
        self._own_http = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._handlers: list[MessageHandler] = []
        self._state_listeners: list[StateListener] = []
        self._pending: dict[str, asyncio.Future[ET.Element]] = {}
        self._lost = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._keepalive_handle: asyncio.TimerHandle | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def __repr__(self) -> str:
        return f"<XmppClient {self.jid or self.bare_jid} {self.state.value}>"

    @property
    def bare_jid(self) -> str:
        return f"{self.user_id}-{self.app_id}@{self.domain}"

    # -- public API ---------------------------------------------------------------------------

    def add_message_handler(self, handler: MessageHandler) -> None:
        """Call `handler(element, raw_frame)` for every incoming `<message>`."""
        self._handlers.append(handler)

    def remove_message_handler(self, handler: MessageHandler) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(handler)

    def add_state_listener(self, listener: StateListener) -> None:
        """Call `listener(state)` on every state change."""
        self._state_listeners.append(listener)

    async def connect(self) -> None:
        """Connect, log in and bind.

        Raise AuthError, ConnectyCubeTimeout or ConnectyCubeUnavailable on failure.
        """
        assert self.state == ChatState.NEW, "connect() may be called once"
        self._set_state(ChatState.CONNECTING)
        try:
            await self._establish()
        except BaseException:
            await self._teardown_socket()
            self._set_state(ChatState.CLOSED)
            await self._close_http()
            raise
        self._set_state(ChatState.ONLINE)
        self._run_task = asyncio.create_task(self._run())

    async def send(self, frame: str) -> None:
        """Send one serialised element; raise ChatNotConnected when offline."""
        ws = self._ws
        if self.state != ChatState.ONLINE or ws is None or ws.closed:
            raise ChatNotConnected(f"chat for {self.bare_jid} is {self.state.value}")
        try:
            await ws.send_str(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            self._lost.set()
            raise ChatNotConnected(f"chat for {self.bare_jid} lost: {exc}") from None

    async def iq(self, frame: str, iq_id: str, wait: float | None = None) -> ET.Element:
        """Send an IQ and return the `result`/`error` reply with the same id."""
        future: asyncio.Future[ET.Element] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = future
        try:
            await self.send(frame)
            return await asyncio.wait_for(future, wait or self.ping_timeout)
        finally:
            self._pending.pop(iq_id, None)

    async def ping(self, wait: float | None = None) -> None:
        """Ping the server (XEP-0199); raise TimeoutError without an answer."""
        iq_id = new_id()
        await self.iq(
            f'<iq type="get" id="{iq_id}" to="{escape_attr(self.domain)}" xmlns="{NS_CLIENT}">'
            f'<ping xmlns="{NS_PING}"/></iq>',
            iq_id,
            wait,
        )

    async def close(self) -> None:
        """Close the stream cleanly with `<close/>` (idempotent)."""
        if self._closing:
            if self._run_task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self._run_task)
            return
        self._closing = True
        self._keepalive_cancel()
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.send_str(f'<close xmlns="{NS_FRAMING}"/>')
        self._lost.set()
        if self._run_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        await self._teardown_socket()
        for task in list(self._handler_tasks):
            task.cancel()
        self._set_state(ChatState.CLOSED)
        await self._close_http()

    # -- state --------------------------------------------------------------------------------

    def _set_state(self, state: ChatState) -> None:
        if state == self.state:
            return
        logger.info("chat %s - %s -> %s", self.bare_jid, self.state.name, state.name)
        self.state = state
        for listener in list(self._state_listeners):
            try:
                listener(state)
            except Exception:
                logger.exception("chat state listener failed")

    # -- connection ---------------------------------------------------------------------------

    async def _establish(self) -> None:
        """Open the socket and run the login handshake up to a bound, online stream."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        try:
            self._ws = await self._http.ws_connect(
                self.url,
                protocols=("xmpp",),
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                max_msg_size=self.max_frame,
                autoping=True,
            )
        except TimeoutError:
            raise ConnectyCubeTimeout(0, None, f"chat at {self.url} timed out") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectyCubeUnavailable(0, None, f"chat unreachable at {self.url}: {exc}") from None
        if self._ws.protocol != "xmpp":
            raise ConnectyCubeUnavailable(0, None, f"chat at {self.url} did not accept subprotocol xmpp")
        try:
            await asyncio.wait_for(self._handshake(), self.connect_timeout)
        except TimeoutError:
            raise ConnectyCubeTimeout(0, None, f"chat login at {self.url} timed out") from None
        except ValueError as exc:
            raise ConnectyCubeUnavailable(0, None, f"chat server sent bad XML: {exc}") from None
        self._lost.clear()
        self._keepalive_start()

    async def _handshake(self) -> None:
        host = urlsplit(self.url).hostname or self.domain
        self.jid = await login(
            self._send_raw, self._recv, host=host, user_id=self.user_id, app_id=self.app_id, password=self.__password
        )

    async def _send_raw(self, frame: str) -> None:
        assert self._ws is not None
        await self._ws.send_str(frame)

    async def _recv(self) -> ET.Element:
        """Read the next element during the handshake."""
        assert self._ws is not None
        while True:
            msg = await self._ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectyCubeUnavailable(0, None, f"chat socket closed during login ({msg.type})")
            element = parse_frame(msg.data, self.max_frame)
            if element.tag == qname(NS_FRAMING, "close"):
                raise ConnectyCubeUnavailable(0, None, "chat server closed the stream during login")
            if self._is_server_ping(element):
                await self._answer_ping(element)
                continue
            return element

    async def _teardown_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChatNotConnected("chat connection lost"))
        self._pending.clear()

    async def _close_http(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()
        self._http = None

    # -- running ------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Read frames until closed; reconnect with backoff when the link drops."""
        while not self._closing:
            reader = asyncio.create_task(self._read_loop())
            lost = asyncio.create_task(self._lost.wait())
            try:
                await asyncio.wait({reader, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                reader.cancel()
                lost.cancel()
                await asyncio.gather(reader, lost, return_exceptions=True)
            self._keepalive_cancel()
            if self._closing:
                return
            await self._teardown_socket()
            if not self.reconnect:
                self._set_state(ChatState.CLOSED)
                return
            self._set_state(ChatState.RECONNECTING)
            if not await self._reconnect():
                return
            self._set_state(ChatState.ONLINE)

    async def _reconnect(self) -> bool:
        # Full jitter keeps many accounts from reconnecting in lockstep after an outage.
        self._backoff.reset()
        while not self._closing:
            await self._backoff.sleep()
            if self._closing:
                return False
            try:
                await self._establish()
                logger.info("chat %s reconnected as %s", self.bare_jid, self.jid)
                return True
            except (ConnectyCubeUnavailable, ConnectyCubeTimeout, AuthError, ValueError) as exc:
                logger.warning("chat %s reconnect failed: %s", self.bare_jid, exc)
                await self._teardown_socket()
        return False

    async def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                logger.info("chat %s socket ended (%s)", self.bare_jid, msg.type.name)
                return
            try:
                element = parse_frame(msg.data, self.max_frame)
            except ValueError as exc:
                logger.warning("chat %s dropped a bad frame: %s", self.bare_jid, exc)
                continue
            if element.tag == qname(NS_FRAMING, "close"):
                logger.info("chat %s: server closed the stream", self.bare_jid)
                with contextlib.suppress(Exception):
                    await ws.send_str(f'<close xmlns="{NS_FRAMING}"/>')
                return
            await self._dispatch(element, msg.data)

    async def _dispatch(self, element: ET.Element, raw: str) -> None:
        name = local_name(element)
        if name == "iq":
            await self._on_iq(element)
        elif name == "message":
            for handler in list(self._handlers):
                try:
                    result = handler(element, raw)
                    if inspect.isawaitable(result):
                        task = asyncio.ensure_future(result)
                        self._handler_tasks.add(task)
                        task.add_done_callback(self._handler_done)
                except Exception:
                    logger.exception("chat message handler failed")

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._handler_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("chat message handler failed", exc_info=task.exception())

    async def _on_iq(self, iq: ET.Element) -> None:
        kind = iq.get("type")
        if kind in ("result", "error"):
            future = self._pending.get(iq.get("id", ""))
            if future is not None and not future.done():
                future.set_result(iq)
            return
        if self._is_server_ping(iq):
            await self._answer_ping(iq)
            return
        # RFC 6120 8.2.3: an IQ get/set nobody handles gets an error, never silence.
        await self._send_quiet(
            f'<iq type="error" id="{escape_attr(iq.get("id", ""))}"'
            f' to="{escape_attr(iq.get("from", self.domain))}" xmlns="{NS_CLIENT}">'
            f'<error type="cancel"><service-unavailable xmlns="{NS_STANZAS}"/></error></iq>'
        )

    @staticmethod
    def _is_server_ping(iq: ET.Element) -> bool:
        return (
            local_name(iq) == "iq"
            and iq.get("type") == "get"
            and iq.find(qname(NS_PING, "ping")) is not None
        )

    async def _answer_ping(self, iq: ET.Element) -> None:
        await self._send_quiet(
            f'<iq type="result" id="{escape_attr(iq.get("id", ""))}"'
            f' to="{escape_attr(iq.get("from", self.domain))}" xmlns="{NS_CLIENT}"/>'
        )

    async def _send_quiet(self, frame: str) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.send_str(frame)

    # -- keep-alive timer ---------------------------------------------------------------------

    def _keepalive_start(self) -> None:
        self._keepalive_cancel()
        if self.keepalive_interval > 0:
            loop = asyncio.get_running_loop()
            self._keepalive_handle = loop.call_later(self.keepalive_interval, self._keepalive_expired)

    def _keepalive_cancel(self) -> None:
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None

    def _keepalive_expired(self) -> None:
        self._keepalive_handle = None
        self._keepalive_task = asyncio.ensure_future(self._keepalive_ping())

    async def _keepalive_ping(self) -> None:
        try:
            await self.ping(self.ping_timeout)
        except (TimeoutError, ChatNotConnected):
            if not self._closing and self.state == ChatState.ONLINE:
                logger.warning("chat %s: no answer to keep-alive ping; reconnecting", self.bare_jid)
                self._lost.set()
            return
        if self.state == ChatState.ONLINE and not self._closing:
            self._keepalive_start()
