"""A Django-free asyncio SIP user agent over UDP (RFC 3261 §17 with RFC 6026).

Entry point: ``SipEndpoint``. Incoming calls arrive as ``ServerInvite`` via
``endpoint.on_invite``; ``endpoint.invite()`` places an ``OutgoingCall``; both
lead to a ``Dialog`` that handles re-INVITE/UPDATE, BYE and the 2xx/ACK dance.
"""

from .call import IncomingCallState, OutgoingCall, OutgoingCallState, ServerInvite
from .dialog import Dialog, DialogState
from .digest import Credentials
from .endpoint import SipEndpoint
from .errors import CallFailed, InvalidStateError, SipError, SipStatusError
from .message import SipParseError, SipRequest, SipResponse
from .sdp import SessionDescription, answer_sdp, audio_offer, mirror_direction
from .timers import DEFAULT_TIMERS, Timers

__all__ = [
    "DEFAULT_TIMERS",
    "CallFailed",
    "Credentials",
    "Dialog",
    "DialogState",
    "IncomingCallState",
    "InvalidStateError",
    "OutgoingCall",
    "OutgoingCallState",
    "ServerInvite",
    "SessionDescription",
    "SipEndpoint",
    "SipError",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipStatusError",
    "Timers",
    "answer_sdp",
    "audio_offer",
    "mirror_direction",
]
