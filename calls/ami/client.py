"""A small async AMI client on top of panoramisk 1.4.

panoramisk parses the wire protocol; this adapter owns the connection
lifecycle, because panoramisk's own has gaps seen against Asterisk 22:

* its keep-alive Ping is fire-and-forget, so a hung link is never noticed:
  here a watchdog pings with a timeout and reconnects with backoff;
* its reconnect re-sends queued actions on the new link (a second Hangup or
  Originate): here each connection gets a fresh ``Manager`` and pending
  actions fail with ``AmiNotConnected`` instead;
* a reply "successfully queued" without an ``Async`` key kills the link:
  every action here carries ``Async`` (see ``actions.with_async``);
* ``OriginateResponse`` completes the Originate action and never reaches
  event handlers: ``originate()`` returns it (and forwards it to on_event).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from panoramisk import Manager

from common.backoff import Backoff

from . import actions
from .actions import OriginateResult
from .errors import AmiError, AmiLoginError, AmiNotConnected, AmiTimeout, ChannelGone
from .events import AmiEvent, AmiResponse, event_from_message, response_from_messages
from .protocol import _Manager, _Protocol, _RedactingLog

logger = logging.getLogger(__name__)

EventHandler = Callable[[AmiEvent], "Awaitable[None] | None"]
ConnectHandler = Callable[[], "Awaitable[None] | None"]
DisconnectHandler = Callable[[str], "Awaitable[None] | None"]


class State(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


class AmiClient:
    """A persistent, self-healing AMI connection with typed actions."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        ping_interval: float = 5.0,
        ping_timeout: float = 3.0,
        action_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect_min: float = 0.5,  # backoff base: full jitter up to min * 2**n ...
        reconnect_max: float = 30.0,  # ... capped here (the listener passes 10)
        on_event: EventHandler | None = None,
        on_connect: ConnectHandler | None = None,
        on_disconnect: DisconnectHandler | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.__secret = secret
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.action_timeout = action_timeout
        self.connect_timeout = connect_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._backoff = Backoff(reconnect_min, reconnect_max)  # a bad pair fails here, not in the loop
        self.on_event = on_event
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect

        self.latency_ms: float | None = None
        self.last_event_at: float | None = None
        self.last_error: str | None = None
        self.connect_count = 0
        self._state = State.NEW
        self._manager: _Manager | None = None
        self._lost: asyncio.Event | None = None
        self._connected_event: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._hook_tasks: set[asyncio.Task[Any]] = set()
        self._plog = _RedactingLog(logging.getLogger(__name__ + ".panoramisk"), secret)

    def __repr__(self) -> str:
        return f"<AmiClient {self.username}@{self.host}:{self.port} {self._state.value}>"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def state(self) -> State:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is State.CONNECTED

    def _set_state(self, state: State) -> None:
        if state is not self._state:
            logger.debug("%r - %s -> %s", self, self._state.value, state.value)
            self._state = state

    # --- lifecycle ---

    async def start(self) -> None:
        """Start the connect loop in the background; return at once.

        Use ``wait_connected()`` to wait for the first successful login.
        """
        if self._state is not State.NEW:
            raise AmiError(f"AmiClient.start() called in state {self._state.value}")
        self._lost = asyncio.Event()
        self._connected_event = asyncio.Event()
        self._stopping = asyncio.Event()
        self._set_state(State.CONNECTING)
        self._run_task = asyncio.create_task(self._run(), name=f"ami {self.address}")

    async def wait_connected(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until logged in; raise AmiTimeout with the last error otherwise."""
        if self._connected_event is None:
            raise AmiNotConnected("AmiClient.start() was not called")
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
        except TimeoutError:
            raise AmiTimeout(
                f"AMI {self.username}@{self.address} not connected after {timeout:.1f}s"
                f" (last error: {self.last_error or 'none'})"
            ) from None

    async def stop(self) -> None:
        """Close the connection and stop reconnecting; idempotent."""
        if self._state in (State.NEW, State.CLOSED):
            self._set_state(State.CLOSED)
            return
        assert self._stopping is not None
        self._stopping.set()
        was_connected = self.connected
        self._teardown()
        task, self._run_task = self._run_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._set_state(State.CLOSED)
        if was_connected:
            await self._call_hook(self.on_disconnect, "stopped")

    async def _run(self) -> None:
        assert self._stopping is not None and self._lost is not None
        backoff = self._backoff
        backoff.reset()
        while not self._stopping.is_set():
            self._set_state(State.CONNECTING)
            try:
                await self._connect_once()
            except AmiLoginError as exc:
                self.last_error = str(exc)
                delay = backoff.next()
                logger.error("%s; retrying in %.1fs", exc, delay)
            except (OSError, TimeoutError, AmiError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = backoff.next()
                logger.warning("AMI connect to %s failed (%s); retrying in %.1fs",
                               self.address, self.last_error, delay)
            else:
                backoff.reset()
                self.connect_count += 1
                self._set_state(State.CONNECTED)
                assert self._connected_event is not None
                self._connected_event.set()
                logger.info("AMI connected to %s as %s", self.address, self.username)
                await self._call_hook(self.on_connect)
                reason = await self._watch()
                if self._stopping.is_set():
                    return
                self.last_error = reason
                delay = backoff.next()
                logger.warning("AMI link to %s down: %s; reconnecting in %.1fs",
                               self.address, reason, delay)
                self._teardown()
                self._set_state(State.DISCONNECTED)
                await self._call_hook(self.on_disconnect, reason)
            self._teardown()
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass

    async def _connect_once(self) -> None:
        assert self._lost is not None
        loop = asyncio.get_running_loop()
        self._lost.clear()
        # The Manager and its futures must be created inside the running loop.
        manager = _Manager(
            self._on_link_lost,
            host=self.host, port=self.port, username=self.username, secret=self.__secret,
            events="on", loop=loop, log=self._plog, ping_delay=3600,
            protocol_factory=_Protocol,
        )
        manager.register_event("*", self._dispatch)
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(_Protocol, self.host, self.port), self.connect_timeout
        )
        connected: asyncio.Future[Any] = loop.create_future()
        connected.set_result((transport, protocol))
        self._manager = manager
        manager.connection_made(connected)  # sends Login
        login = manager.authenticated_future
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({login, lost}, timeout=self.connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if login not in done:
            what = "closed the connection" if lost in done else "did not answer"
            raise AmiError(f"AMI {self.address} {what} during login as {self.username!r}")
        reply = login.result()
        if not reply.success:
            message = reply.get("Message", "") or reply.get("Response", "")
            raise AmiLoginError(
                f"AMI login to {self.address} as {self.username!r} refused: {message}"
            )

    async def _watch(self) -> str:
        """Ping until the link fails; return why it failed."""
        assert self._lost is not None and self._stopping is not None
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self.ping_interval)
                return "connection closed by peer"
            except TimeoutError:
                pass
            try:
                await self.ping(timeout=self.ping_timeout)
            except AmiTimeout:
                return f"no answer to Ping within {self.ping_timeout:.1f}s"
            except AmiNotConnected:
                return "connection closed by peer"
            except AmiError as exc:
                return f"Ping failed: {exc}"

    def _on_link_lost(self, exc: object) -> None:
        if self._lost is not None:
            self._lost.set()
        self._fail_pending("connection lost")

    def _teardown(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            protocol = manager.protocol
            manager.close()
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                # close() waits to flush to a peer that may never read again.
                transport.abort()
        self._fail_pending("connection closed")

    def _fail_pending(self, why: str) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(AmiNotConnected(f"AMI {self.address}: {why}"))
        self._pending.clear()

    # --- events ---

    def _dispatch(self, manager: Manager, message: Any) -> None:
        self.last_event_at = time.time()
        try:
            event = event_from_message(message)
        except Exception as exc:  # bad input from the wire is skipped
            logger.warning("skipping malformed AMI event from %s: %s", self.address, exc)
            return
        self._emit(event)

    def _emit(self, event: AmiEvent) -> None:
        if self.on_event is None:
            return
        try:
            result = self.on_event(event)
        except Exception:
            logger.exception("AMI on_event handler failed for %r", event)
            return
        if inspect.isawaitable(result):
            self._track(asyncio.ensure_future(result), f"on_event({event.name})")

    async def _call_hook(self, hook: Callable[..., Any] | None, *args: Any) -> None:
        if hook is None:
            return
        try:
            result = hook(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("AMI hook %r failed", hook)

    def _track(self, task: asyncio.Future[Any], what: str) -> None:
        self._hook_tasks.add(task)  # type: ignore[arg-type]

        def done(t: asyncio.Future[Any]) -> None:
            self._hook_tasks.discard(t)  # type: ignore[arg-type]
            if not t.cancelled() and t.exception() is not None:
                logger.error("AMI %s failed", what, exc_info=t.exception())

        task.add_done_callback(done)

    # --- actions ---

    async def action(
        self, action: Mapping[str, Any], timeout: float | None = None  # noqa: ASYNC109
    ) -> AmiResponse:
        """Send an action and return its response; raise AmiError on failure.

        List actions (CoreShowChannels, ...) return the response with their
        events in ``response.events``.
        """
        payload = actions.with_async(dict(action))
        name = payload.get("Action", "?")
        manager = self._manager
        if manager is None or self._state is not State.CONNECTED:
            raise AmiNotConnected(f"AMI {self.address} not connected; cannot send {name}")
        future = manager.send_action(payload)
        self._pending.add(future)
        limit = self.action_timeout if timeout is None else timeout
        try:
            result = await asyncio.wait_for(future, limit)
        except TimeoutError:
            raise AmiTimeout(
                f"{name}: no answer from AMI {self.address} within {limit:.1f}s"
            ) from None
        finally:
            self._pending.discard(future)
        try:
            response = response_from_messages(result)
        except ValueError as exc:
            raise AmiError(f"{name}: unreadable response: {exc}") from exc
        return actions.raise_for_response(payload, response)

    async def ping(self, timeout: float | None = None) -> float:  # noqa: ASYNC109
        """Send Ping; return and remember the round trip in milliseconds."""
        started = time.monotonic()
        await self.action({"Action": "Ping"}, timeout=timeout or self.ping_timeout)
        self.latency_ms = (time.monotonic() - started) * 1000.0
        return self.latency_ms

    async def hangup(self, channel: str, cause: int = 16) -> None:
        """Hang up a channel (cause 16: normal clearing)."""
        await self.action(actions.hangup(channel, cause))

    async def blind_transfer(self, channel: str, exten: str, context: str) -> str:
        """Blind-transfer a channel; return the action that did it.

        BlindTransfer needs the channel to be bridged; otherwise fall back to
        Redirect, which moves the channel itself.
        """
        try:
            await self.action(actions.blind_transfer(channel, exten, context))
            return "BlindTransfer"
        except ChannelGone:
            raise
        except (AmiTimeout, AmiNotConnected):
            raise
        except AmiError as exc:
            logger.info("BlindTransfer of %s refused (%s); using Redirect", channel, exc)
        await self.action(actions.redirect(channel, exten, context))
        return "Redirect"

    async def redirect(self, channel: str, exten: str, context: str, priority: int = 1) -> None:
        """Move a channel to another place in the dialplan."""
        await self.action(actions.redirect(channel, exten, context, priority))

    async def attended_transfer(self, channel: str, exten: str, context: str) -> None:
        """Start an attended transfer (Atxfer) from a bridged channel."""
        await self.action(actions.attended_transfer(channel, exten, context))

    async def bridge(self, channel1: str, channel2: str) -> None:
        """Bridge two existing channels together."""
        await self.action(actions.bridge(channel1, channel2))

    async def originate(
        self,
        channel: str,
        exten: str,
        context: str,
        *,
        callerid: str | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 - Asterisk's ring timeout
        variables: dict[str, str] | None = None,
    ) -> OriginateResult:
        """Place a call; return when Asterisk reports its OriginateResponse."""
        action = actions.originate(
            channel, exten, context, callerid=callerid, timeout=timeout, variables=variables
        )
        try:
            response = await self.action(action, timeout=timeout + self.action_timeout)
        except AmiError as exc:
            # Async Originate reports failure in the OriginateResponse, but
            # older versions may refuse at once; keep that as a failure too.
            raise AmiError(f"Originate to {channel} failed: {exc}") from exc
        result = OriginateResult.from_response(response)
        if result.event is not None:
            self._emit(result.event)
        return result

    async def core_show_channels(self) -> list[dict[str, str]]:
        """Return one dict per active channel."""
        response = await self.action({"Action": "CoreShowChannels"})
        return [dict(e) for e in response.events if e.name == "CoreShowChannel"]
