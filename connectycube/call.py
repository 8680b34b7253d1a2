"""One 1:1 ConnectyCube P2P call on aiortc, speaking the SDK's signalling (protocol doc section 5).

Outgoing: send `call` now and every `dialing_interval` until answered; after `ring_timeout` give up
with `hangUp` (the SDK callee is told nothing otherwise). Incoming: ring until `accept()`,
`reject()` or the caller's `hangUp`. Local candidates go out as `iceCandidates` once the call is
accepted; ICE gets its own connect timeout, because the SDK never signals end-of-candidates.

Events (pyee): ringing, accepted(user_id), rejected(user_id, info), hung_up(user_id, info),
not_answered, answered_elsewhere(signal_type), ice_state(state), closed(reason).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCIceServer, RTCPeerConnection
from pyee.asyncio import AsyncIOEventEmitter

from .ice import add_trickle_option, sdp_candidates
from .peer import LocalPeer, Peer
from .signalling import CallType, IceCandidate, Signal, SignalType

logger = logging.getLogger(__name__)


@dataclass
class CallConfig:
    """Timers and ICE settings shared by the calls of one account."""

    ice_servers: list[RTCIceServer] = field(default_factory=list)
    # Host addresses for ICE; None lets aioice scan the interfaces (it skips 127.0.0.1).
    host_addresses: list[str] | None = None
    dialing_interval: float = 5.0  # SDK dialingTimeInterval
    ring_timeout: float = 60.0  # SDK answerTimeInterval, both directions
    ice_timeout: float = 20.0
    platform: str = "web"


class SignalSender(Protocol):
    async def send_signal(self, user_id: int, signal: Signal) -> None:
        """Send a call signal to the user's bare JID."""


class CallDirection(enum.Enum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


class P2PCallState(enum.Enum):
    NEW = "new"
    RINGING = "ringing"
    CONNECTING = "connecting"  # accepted, ICE not yet connected
    CONNECTED = "connected"
    CLOSED = "closed"


class P2PCall(AsyncIOEventEmitter):
    """A 1:1 call with one peer.

    Its media end is `peer`: by default a `LocalPeer`, whose RTCPeerConnection (`pc`) the media
    layer attaches tracks to; the bridge passes a peer that lives on a media worker.
    """

    def __init__(
        self,
        sender: SignalSender,
        *,
        direction: CallDirection,
        session_id: str,
        self_id: int,
        peer_id: int,
        initiator_id: int,
        opponents_ids: list[int],
        call_type: int,
        config: CallConfig,
        user_info: dict[str, Any] | None = None,
        peer: Peer | None = None,
    ) -> None:
        super().__init__()
        self.sender = sender
        self.direction = direction
        self.session_id = session_id
        self.self_id = self_id
        self.peer_id = peer_id
        self.initiator_id = initiator_id
        self.opponents_ids = opponents_ids
        self.call_type = call_type
        self.config = config
        self.user_info = dict(user_info or {})  # the caller's userInfo
        self.state = P2PCallState.NEW
        self.close_reason: str | None = None
        self.peer: Peer = peer or LocalPeer(
            ice_servers=config.ice_servers, host_addresses=config.host_addresses, call_type=call_type
        )
        self.peer.on_ice_state = self._on_ice_state
        self._remote_offer: str | None = None
        self._offer = ""  # our offer (outgoing calls), re-sent with every `call`
        self._local_candidates: list[IceCandidate] = []
        self._remote_candidates: list[IceCandidate] = []
        self._dialing_handle: asyncio.TimerHandle | None = None
        self._ring_handle: asyncio.TimerHandle | None = None
        self._ice_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = asyncio.Event()

    @property
    def pc(self) -> RTCPeerConnection:
        """The RTCPeerConnection of a local peer, to attach tracks to."""
        if not isinstance(self.peer, LocalPeer):
            raise AttributeError("this call's media lives elsewhere; it has no local pc")
        return self.peer.pc

    @property
    def connected(self) -> bool:
        """Whether the media is up (ICE connected after the accept)."""
        return self.state is P2PCallState.CONNECTED

    def __repr__(self) -> str:
        return (f"<P2PCall {self.session_id} {self.direction.value} peer={self.peer_id}"
                f" {self.state.value}>")

    @classmethod
    def outgoing(
        cls, sender: SignalSender, self_id: int, peer_id: int, call_type: int, config: CallConfig,
        user_info: dict[str, Any] | None = None, session_id: str | None = None,
        peer: Peer | None = None,
    ) -> P2PCall:
        """Create a call to place with `start()`."""
        return cls(
            sender, direction=CallDirection.OUTGOING, session_id=session_id or str(uuid.uuid4()),
            self_id=self_id, peer_id=peer_id, initiator_id=self_id, opponents_ids=[peer_id],
            call_type=call_type, config=config, user_info=user_info, peer=peer,
        )

    @classmethod
    def incoming(cls, sender: SignalSender, self_id: int, signal: Signal,
                 config: CallConfig, peer: Peer | None = None) -> P2PCall:
        """Create a ringing call from a received `call` signal."""
        if signal.caller_id is None or not signal.sdp:
            raise ValueError("call signal without callerID or sdp")
        call = cls(
            sender, direction=CallDirection.INCOMING, session_id=signal.session_id,
            self_id=self_id, peer_id=signal.caller_id, initiator_id=signal.caller_id,
            opponents_ids=list(signal.opponents_ids or [self_id]),
            call_type=signal.call_type or CallType.VIDEO, config=config,
            user_info=signal.user_info, peer=peer,
        )
        call._remote_offer = signal.sdp
        call._set_state(P2PCallState.RINGING)
        call._ring_start()
        return call

    # -- state --------------------------------------------------------------------------------

    def _set_state(self, state: P2PCallState) -> None:
        if state == self.state:
            return
        logger.info("call %s - %s -> %s", self.session_id, self.state.name, state.name)
        self.state = state

    async def wait_closed(self) -> str | None:
        """Wait until the call is closed; return the reason."""
        await self._closed.wait()
        return self.close_reason

    # -- actions ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the offer and start ringing the peer (outgoing calls)."""
        assert self.direction == CallDirection.OUTGOING and self.state == P2PCallState.NEW
        self._set_state(P2PCallState.RINGING)
        self._offer = await self.peer.make_offer()
        self._local_candidates = sdp_candidates(self._offer)
        if self.state != P2PCallState.RINGING:
            return  # hung up while the offer was being built
        await self._send_call()
        self._dialing_start()
        self._ring_start()
        self.emit("ringing")

    async def accept(self, user_info: dict[str, Any] | None = None) -> None:
        """Answer a ringing incoming call."""
        if self.direction != CallDirection.INCOMING or self.state != P2PCallState.RINGING:
            raise RuntimeError(f"cannot accept a call that is {self.state.value}")
        assert self._remote_offer is not None
        self._ring_cancel()
        self._set_state(P2PCallState.CONNECTING)
        local_sdp = await self.peer.make_answer(self._remote_offer)
        self._local_candidates = sdp_candidates(local_sdp)
        await self._send(SignalType.ACCEPT, sdp=add_trickle_option(local_sdp), user_info=user_info)
        self.emit("accepted", self.self_id)
        await self._send_candidates()
        await self._add_remote_candidates()
        self._ice_start()

    async def reject(self, user_info: dict[str, Any] | None = None) -> None:
        """Decline a ringing incoming call."""
        if self.state == P2PCallState.CLOSED:
            return
        if self.direction == CallDirection.INCOMING and self.state == P2PCallState.RINGING:
            await self._send_quiet(SignalType.REJECT, user_info=user_info)
            await self.close("rejected")
        else:
            await self.hangup(user_info)

    async def hangup(self, user_info: dict[str, Any] | None = None) -> None:
        """End the call and tell the peer (`hangUp`)."""
        if self.state == P2PCallState.CLOSED:
            return
        if self.state != P2PCallState.NEW:
            await self._send_quiet(SignalType.HANG_UP, user_info=user_info)
        await self.close("hung up")

    async def close(self, reason: str = "closed") -> None:
        """Release the call without signalling (idempotent)."""
        if self.state == P2PCallState.CLOSED:
            return
        self.close_reason = reason
        self._set_state(P2PCallState.CLOSED)
        self._dialing_cancel()
        self._ring_cancel()
        self._ice_cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        try:
            await self.peer.close()
        except Exception:
            logger.exception("call %s: closing the peer connection failed", self.session_id)
        self._closed.set()
        self.emit("closed", reason)

    # -- incoming signals ---------------------------------------------------------------------

    async def handle_signal(self, signal: Signal, from_user_id: int) -> None:
        """Process a signal of this session from `from_user_id`."""
        if self.state == P2PCallState.CLOSED:
            return
        kind = signal.signal_type
        if from_user_id == self.self_id and from_user_id != self.peer_id:
            # Our own signal from another device of this account (a carbon).
            if (self.direction == CallDirection.INCOMING and self.state == P2PCallState.RINGING
                    and kind in (SignalType.ACCEPT, SignalType.REJECT)):
                self.emit("answered_elsewhere", kind)
                await self.close(f"{kind} on another device")
            return
        if from_user_id != self.peer_id:
            logger.warning("call %s: ignoring %s from user %s", self.session_id, kind,
                           from_user_id)
            return
        if kind == SignalType.CALL:
            if self.direction == CallDirection.INCOMING and self.state == P2PCallState.RINGING:
                self._remote_offer = signal.sdp or self._remote_offer  # re-sends carry candidates
        elif kind == SignalType.ACCEPT:
            await self._on_accept(signal)
        elif kind == SignalType.REJECT:
            self.emit("rejected", from_user_id, signal.user_info)
            await self.close("rejected by peer")
        elif kind == SignalType.HANG_UP:
            self.emit("hung_up", from_user_id, signal.user_info)
            await self.close("hung up by peer")
        elif kind == SignalType.ICE_CANDIDATES:
            self._remote_candidates.extend(signal.ice_candidates or [])
            if self.peer.has_remote_description():
                await self._add_remote_candidates()
        else:
            logger.info("call %s: ignoring signal %s", self.session_id, kind)

    async def _on_accept(self, signal: Signal) -> None:
        if self.direction != CallDirection.OUTGOING or self.state != P2PCallState.RINGING:
            return
        if not signal.sdp:
            raise ValueError("accept without sdp")
        self._dialing_cancel()
        self._ring_cancel()
        self._set_state(P2PCallState.CONNECTING)
        await self.peer.set_answer(signal.sdp)
        self.emit("accepted", self.peer_id)
        await self._send_candidates()
        await self._add_remote_candidates()
        self._ice_start()

    async def _add_remote_candidates(self) -> None:
        pending, self._remote_candidates = self._remote_candidates, []
        for error in await self.peer.add_candidates(pending):
            logger.warning("call %s: %s", self.session_id, error)

    def _on_ice_state(self, state: str) -> None:
        self.emit("ice_state", state)
        if state in ("connected", "completed") and self.state == P2PCallState.CONNECTING:
            self._ice_cancel()
            self._set_state(P2PCallState.CONNECTED)
        elif state == "failed" and self.state != P2PCallState.CLOSED:
            self._spawn(self._give_up("ice failed"))

    # -- outgoing signals ---------------------------------------------------------------------

    def _signal(self, kind: SignalType, **fields: Any) -> Signal:
        return Signal(
            signal_type=kind, session_id=self.session_id, call_type=int(self.call_type),
            caller_id=self.initiator_id, opponents_ids=list(self.opponents_ids),
            platform=self.config.platform, **fields,
        )

    async def _send(self, kind: SignalType, *, user_info: dict[str, Any] | None = None,
                    **fields: Any) -> None:
        signal = self._signal(kind, user_info=dict(user_info or {}), **fields)
        await self.sender.send_signal(self.peer_id, signal)

    async def _send_quiet(self, kind: SignalType, **fields: Any) -> None:
        try:
            await self._send(kind, **fields)
        except Exception as exc:
            logger.warning("call %s: could not send %s: %s", self.session_id, kind, exc)

    async def _send_call(self) -> None:
        await self._send_quiet(SignalType.CALL, sdp=add_trickle_option(self._offer), user_info=self.user_info)

    async def _send_candidates(self) -> None:
        if self._local_candidates:
            await self._send_quiet(SignalType.ICE_CANDIDATES,
                                   ice_candidates=list(self._local_candidates))

    async def _give_up(self, reason: str) -> None:
        await self._send_quiet(SignalType.HANG_UP, user_info={"reason": reason})
        await self.close(reason)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- timers -------------------------------------------------------------------------------

    def _dialing_start(self) -> None:
        loop = asyncio.get_running_loop()
        self._dialing_handle = loop.call_later(self.config.dialing_interval, self._dialing_expired)

    def _dialing_cancel(self) -> None:
        if self._dialing_handle is not None:
            self._dialing_handle.cancel()
            self._dialing_handle = None

    def _dialing_expired(self) -> None:
        self._dialing_handle = None
        if self.state == P2PCallState.RINGING:
            self._spawn(self._send_call())
            self._dialing_start()

    def _ring_start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ring_handle = loop.call_later(self.config.ring_timeout, self._ring_expired)

    def _ring_cancel(self) -> None:
        if self._ring_handle is not None:
            self._ring_handle.cancel()
            self._ring_handle = None

    def _ring_expired(self) -> None:
        self._ring_handle = None
        if self.state != P2PCallState.RINGING:
            return
        self.emit("not_answered")
        if self.direction == CallDirection.OUTGOING:
            self._spawn(self._give_up("not answered"))
        else:
            self._spawn(self.close("not answered"))

    def _ice_start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ice_handle = loop.call_later(self.config.ice_timeout, self._ice_expired)

    def _ice_cancel(self) -> None:
        if self._ice_handle is not None:
            self._ice_handle.cancel()
            self._ice_handle = None

    def _ice_expired(self) -> None:
        self._ice_handle = None
        if self.state == P2PCallState.CONNECTING:
            logger.warning("call %s: ICE did not connect in %ss", self.session_id,
                           self.config.ice_timeout)
            self._spawn(self._give_up("ice timeout"))
