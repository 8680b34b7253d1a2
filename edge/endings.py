"""Why a bridged call ended, and what each reason means on every side. Django-free.

One table maps an end reason to the SIP final response (for a call not yet answered), the Q.850
cause (RFC 3326 Reason header values), what the ConnectyCube app is told in its `hangUp`, and the
CDR disposition of an unanswered call (an answered call's disposition is always "answered").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class Ending:
    sip_status: int  # the final response to a still-pending INVITE
    q850: int  # Q.850 cause
    app_reason: str  # userInfo.reason of the hangUp sent to agents still ringing or talking
    disposition: str  # calls.models.Disposition value of an unanswered call
    text: str  # the CDR's end reason, and the event log's


class EndReason(enum.Enum):
    NOT_FOUND = "not_found"
    DISABLED = "disabled"
    UNAVAILABLE = "unavailable"
    NOT_ACCEPTABLE = "not_acceptable"
    BUSY = "busy"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    ICE_FAILED = "ice_failed"
    MEDIA_LOST = "media_lost"
    PHONE_HUNG_UP = "phone_hung_up"
    AGENT_HUNG_UP = "agent_hung_up"
    INTERNAL_ERROR = "internal_error"
    SHUTDOWN = "shutdown"

    @property
    def ending(self) -> Ending:
        return ENDINGS[self]


# Dispositions spelled as calls.models.Disposition's values: this module imports no Django.
FAILED, BUSY, NO_ANSWER = "failed", "busy", "no_answer"

ENDINGS: dict[EndReason, Ending] = {
    EndReason.NOT_FOUND: Ending(404, 1, "not found", FAILED, "no mapping for this SIP URI"),
    EndReason.DISABLED: Ending(480, 20, "unavailable", FAILED, "the mapping is disabled"),
    EndReason.UNAVAILABLE: Ending(
        503, 41, "unavailable", FAILED, "ConnectyCube or the media workers are unavailable"
    ),
    EndReason.NOT_ACCEPTABLE: Ending(488, 88, "not acceptable", FAILED, "no common codec with the phone"),
    EndReason.BUSY: Ending(486, 17, "busy", BUSY, "rejected by the agents (busy)"),
    EndReason.DECLINED: Ending(603, 21, "rejected", FAILED, "rejected by the agents"),
    EndReason.NO_ANSWER: Ending(480, 19, "not answered", NO_ANSWER, "no agent answered"),
    EndReason.CANCELLED: Ending(487, 16, "caller hung up", NO_ANSWER, "the caller hung up while ringing"),
    EndReason.ANSWERED_ELSEWHERE: Ending(
        487, 26, "answered elsewhere", NO_ANSWER, "answered elsewhere (Asterisk cancelled)"
    ),
    EndReason.ICE_FAILED: Ending(503, 41, "ice timeout", FAILED, "the agent's WebRTC leg did not connect"),
    EndReason.MEDIA_LOST: Ending(503, 41, "media failure", FAILED, "the media worker died"),
    EndReason.PHONE_HUNG_UP: Ending(487, 16, "bye", NO_ANSWER, "the phone hung up"),
    EndReason.AGENT_HUNG_UP: Ending(480, 16, "hung up", NO_ANSWER, "the agent hung up"),
    EndReason.INTERNAL_ERROR: Ending(500, 41, "error", FAILED, "internal error"),
    EndReason.SHUTDOWN: Ending(503, 41, "shutdown", FAILED, "the edge shut down"),
}

# Asterisk says why it cancels (RFC 3326): `SIP;cause=200;text="Call completed elsewhere"` when
# another phone of the Dial answered.
ELSEWHERE_CAUSES = frozenset({200})


def cancel_reason(header: str) -> EndReason:
    """Classify a CANCEL by its Reason header: answered elsewhere, or the caller hung up."""
    for part in (header or "").split(","):
        protocol, _, params = part.strip().partition(";")
        fields = dict(
            (name.strip().lower(), value.strip().strip('"'))
            for name, _, value in (p.partition("=") for p in params.split(";"))
        )
        cause = fields.get("cause", "")
        if protocol.strip().upper() == "SIP" and cause.isdecimal() and int(cause) in ELSEWHERE_CAUSES:
            return EndReason.ANSWERED_ELSEWHERE
        if "elsewhere" in fields.get("text", "").lower():
            return EndReason.ANSWERED_ELSEWHERE
    return EndReason.CANCELLED
