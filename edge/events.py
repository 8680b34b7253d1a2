"""The typed events a bridged call's one loop reads. Django-free.

Everything that can happen to a call arrives as one of these on its queue: from the SIP stack,
from the ConnectyCube calls to the agents, from the media workers, from the agent app's control
messages, and from the call's own timers. The loop handles or logs each one in every state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .legs import AgentLeg


# --- SIP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SipCancelled:
    reason: str  # the CANCEL's Reason header


@dataclass(frozen=True)
class SipReinvite:
    offer: str  # already answered by the dialog's handler; recorded here


@dataclass(frozen=True)
class SipInfo:
    content_type: str
    body: str


@dataclass(frozen=True)
class SipEnded:
    reason: str  # "remote bye", or why the dialog died


# --- the agents' ConnectyCube calls, and their media sessions ----------------------------------


@dataclass(frozen=True)
class LegEvent:
    """Something that happened to one agent's leg."""

    leg: AgentLeg


class AgentRinging(LegEvent):
    """The agent's app is ringing."""


class AgentAccepted(LegEvent):
    """The agent accepted."""


@dataclass(frozen=True)
class AgentRejected(LegEvent):
    info: dict[str, Any] = field(default_factory=dict)  # the reject's userInfo


@dataclass(frozen=True)
class AgentHungUp(LegEvent):
    info: dict[str, Any] = field(default_factory=dict)  # the hangUp's userInfo


@dataclass(frozen=True)
class AgentClosed(LegEvent):
    reason: str = ""  # why the call closed: rejected, hung up, "ice failed", "not answered"


@dataclass(frozen=True)
class AgentIceState(LegEvent):
    state: str = ""


class MediaLost(LegEvent):
    """The leg's media worker stopped its heartbeat."""


@dataclass(frozen=True)
class PhoneDtmf(LegEvent):
    digit: str = ""


# --- the agent app's control messages ----------------------------------------------------------


@dataclass(frozen=True)
class AppDtmf:
    digit: str


@dataclass(frozen=True)
class AppHold:
    on: bool


@dataclass(frozen=True)
class AppTransfer:
    exten: str


# --- timers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RingTimeout:
    round: int  # the ring round it was started for: a later round ignores it


@dataclass(frozen=True)
class IceTimeout:
    pass


Event = (
    SipCancelled | SipReinvite | SipInfo | SipEnded
    | AgentRinging | AgentAccepted | AgentRejected | AgentHungUp | AgentClosed | AgentIceState
    | MediaLost | PhoneDtmf | AppDtmf | AppHold | AppTransfer | RingTimeout | IceTimeout
)
