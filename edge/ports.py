"""What the call machine needs from the rest of the product, as `typing.Protocol`s. Django-free.

The Django side (`edge.records`, `edge.service`) implements the CDR and the account pool; the media
side (`edge.media`) wraps a session on a media worker. Tests implement them with queue-backed
fakes (`tests/edge/fakes.py`), so the machine runs without a database, Redis or ConnectyCube.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connectycube.peer import Peer

from .endings import EndReason


class Direction(enum.Enum):
    INBOUND = "inbound"  # a SIP INVITE from the PBX rings a department's agents
    OUTBOUND = "outbound"  # an app call to the department becomes a SIP call (not built yet)


class BridgeState(enum.Enum):
    NEW = "new"
    RINGING = "ringing"  # agents are being rung
    CONNECTING = "connecting"  # an agent accepted; its WebRTC leg is not up yet
    TALKING = "talking"  # the phone is answered and bridged
    CLOSED = "closed"


class RingStrategy(enum.Enum):
    PARALLEL = "parallel"  # every agent at once; the first accept wins
    SEQUENTIAL = "sequential"  # each agent in turn, for the ring timeout each


@dataclass(frozen=True)
class Route:
    """A department mapping as the call sees it: plain values, no model."""

    key: int  # the mapping's primary key: its ConnectyCube account in the pool
    sip_uri: str
    display_name: str
    enabled: bool
    agents: tuple[int, ...]
    ring_strategy: RingStrategy = RingStrategy.PARALLEL
    ring_timeout: float = 30.0
    prefer_opus: bool = False

    def ring_rounds(self) -> list[tuple[int, ...]]:
        """The agents rung together, round after round."""
        if self.ring_strategy == RingStrategy.SEQUENTIAL:
            return [(agent,) for agent in self.agents]
        return [self.agents] if self.agents else []


@dataclass(frozen=True)
class SipFacts:
    """What the INVITE says about the call, for its CDR row."""

    call_id: str
    from_header: str
    dialed: str
    linkedid: str | None
    received_at: datetime


@dataclass
class Finish:
    """How the call ended, for its CDR row."""

    reason: EndReason
    detail: str = ""  # what failed, when the reason's own text is not enough
    answered: bool = False
    stats: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return self.detail or self.reason.ending.text


class CallRecords(Protocol):
    """The call's CDR row, its timeline and the live board. Writes never block the call."""

    async def find_route(self, *candidates: str | None) -> Route | None:
        """The mapping of the first candidate (request URI, To header) that has one."""

    def open(self, route: Route | None, sip: SipFacts) -> None:
        """Start writing the call's row (the AMI listener's, found by Linkedid, or a new one)."""

    async def caller_number(self) -> str:
        """The caller's number as the CDR has it ("" if unknown yet)."""

    def event(self, kind: str, **payload: Any) -> None:
        """Append a step to the timeline (stamped now, written in order later)."""

    def ringing(self, agents: list[int]) -> None:
        """The agents now ringing."""

    def answered_by(self, agent: int, session_id: str) -> None:
        """The agent who took the call, and its ConnectyCube session."""

    def finish(self, finish: Finish) -> None:
        """Close the row once (the listener closes rows it tracks, with Asterisk's times)."""

    async def transfer(self, exten: str) -> str:
        """Blind-transfer the caller through the AMI listener; return how (the action)."""

    async def flush(self) -> None:
        """Wait until every write above is done (or has failed and been logged)."""


class AppCall(Protocol):
    """The ConnectyCube call to one agent (`connectycube.call.P2PCall`)."""

    session_id: str

    def on(self, event: str, f: Callable[..., Any]) -> Any: ...

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None: ...

    async def hangup(self, user_info: dict[str, Any] | None = None) -> None: ...

    async def close(self, reason: str = "closed") -> None: ...


class Account(Protocol):
    """A department's ConnectyCube account, online on chat."""

    def new_call(self, user_id: int, call_type: int, user_info: dict[str, Any], *, peer: Peer) -> AppCall: ...

    async def send_system_message(self, user_id: int, fields: dict[str, str], body: str = "") -> None: ...


class Accounts(Protocol):
    async def account_for(self, route: Route) -> Account:
        """The route's account, logged in and online (raise if it cannot be)."""


class NotAcceptable(Exception):
    """The phone's SDP shares no codec with the media worker."""


class MediaLeg(Protocol):
    """One media session on a worker: the phone's RTP on one side, an agent's WebRTC on the other."""

    session_id: str
    peer: Peer  # the WebRTC end, handed to the ConnectyCube call
    on_event: Callable[[str, dict[str, Any]], None] | None  # dtmf {digit}, worker_lost {}

    async def answer_phone(self, offer: str) -> str:
        """Apply the phone's SDP (INVITE or re-INVITE); return ours. NotAcceptable: no codec."""

    async def set_hold(self, direction: str) -> None: ...

    async def send_dtmf(self, digits: str) -> None: ...

    async def stats(self) -> dict[str, Any] | None:
        """The session's stats, or None if the worker cannot say."""

    async def close(self) -> None:
        """End the session (idempotent; never raises)."""


class Media(Protocol):
    async def open(self, *, prefer_opus: bool) -> MediaLeg:
        """Start a session on some worker and wait until it runs (raise MediaError if none)."""
