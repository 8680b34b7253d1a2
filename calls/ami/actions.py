"""AMI action builders and result types.

Builders return plain dicts so that ``AmiClient.action`` stays the single
place that sends. Each sets ``Async`` explicitly (see ``with_async``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .errors import AmiError, ChannelGone
from .events import AmiEvent, AmiResponse

# Asterisk words "the channel is not there" differently per action:
# Hangup/Atxfer/BlindTransfer "No such channel", Redirect "Channel does not
# exist: X", Bridge "Channel1 does not exist: X"; some versions say "not found".
_CHANNEL_GONE = re.compile(
    r"no such channel|channel not found|channel ?[12]? does not exists?|"
    r"channel specified does not exist|no channel found",
    re.IGNORECASE,
)


def with_async(action: dict[str, str]) -> dict[str, str]:
    """Return a copy of the action with an ``Async`` header.

    panoramisk 1.4 reads ``action['async']`` whenever a reply says
    "successfully queued"; without the key it raises KeyError inside
    data_received and drops the connection. Originate defaults to async so
    that the OriginateResponse event completes the action.
    """
    result = dict(action)
    if not any(key.lower() == "async" for key in result):
        name = next((v for k, v in result.items() if k.lower() == "action"), "")
        result["Async"] = "true" if name.lower() == "originate" else "false"
    return result


def raise_for_response(action: dict[str, str], response: AmiResponse) -> AmiResponse:
    """Raise ChannelGone or AmiError if the response is not a success."""
    if response.success:
        return response
    name = action.get("Action", "?")
    message = response.message or response.response or "no message"
    if _CHANNEL_GONE.search(message):
        channel = action.get("Channel") or action.get("Channel1") or ""
        raise ChannelGone(f"{name}: channel gone ({channel}): {message}")
    raise AmiError(f"{name} failed: {message}")


def hangup(channel: str, cause: int = 16) -> dict[str, str]:
    return {"Action": "Hangup", "Channel": channel, "Cause": str(cause)}


def blind_transfer(channel: str, exten: str, context: str) -> dict[str, str]:
    return {"Action": "BlindTransfer", "Channel": channel, "Exten": exten, "Context": context}


def redirect(channel: str, exten: str, context: str, priority: int = 1) -> dict[str, str]:
    return {
        "Action": "Redirect", "Channel": channel, "Exten": exten,
        "Context": context, "Priority": str(priority),
    }


def attended_transfer(channel: str, exten: str, context: str) -> dict[str, str]:
    return {"Action": "Atxfer", "Channel": channel, "Exten": exten, "Context": context}


def bridge(channel1: str, channel2: str, *, tone: bool = False) -> dict[str, str]:
    return {
        "Action": "Bridge", "Channel1": channel1, "Channel2": channel2,
        "Tone": "yes" if tone else "no",
    }


def originate(
    channel: str,
    exten: str,
    context: str,
    *,
    priority: int = 1,
    callerid: str | None = None,
    timeout: float = 30.0,
    variables: dict[str, str] | None = None,
) -> dict[str, str]:
    action = {
        "Action": "Originate", "Channel": channel, "Exten": exten, "Context": context,
        "Priority": str(priority), "Timeout": str(int(timeout * 1000)), "Async": "true",
    }
    if callerid:
        action["CallerID"] = callerid
    if variables:
        # panoramisk writes a list value as one header line per item.
        action["Variable"] = [f"{k}={v}" for k, v in variables.items()]  # type: ignore[assignment]
    return action


class OriginateReason(enum.IntEnum):
    """OriginateResponse ``Reason`` codes (Asterisk's AST_CONTROL_* values)."""

    FAILED = 0
    HANGUP = 1
    RING = 2
    RINGING = 3  # rang until the timeout, nobody answered
    ANSWERED = 4
    BUSY = 5
    CONGESTION = 8

    @classmethod
    def parse(cls, value: str) -> OriginateReason:
        try:
            return cls(int(value))
        except ValueError:
            return cls.FAILED


@dataclass(frozen=True)
class OriginateResult:
    """The outcome of an Originate, read from its OriginateResponse event."""

    success: bool
    reason: OriginateReason
    channel: str
    uniqueid: str
    event: AmiEvent | None

    @classmethod
    def from_response(cls, response: AmiResponse) -> OriginateResult:
        event = next((e for e in response.events if e.name == "OriginateResponse"), None)
        if event is None:
            raise AmiError(f"Originate returned no OriginateResponse: {response!r}")
        return cls(
            success=event.get("Response") == "Success",
            reason=OriginateReason.parse(event.get("Reason", "0")),
            channel=event.get("Channel", ""),
            uniqueid=event.get("Uniqueid", ""),
            event=event,
        )
