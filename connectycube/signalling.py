"""Encode and decode ConnectyCube P2P call signals (protocol doc section 5.2).

A signal is a `<message type="headline">` to the peer's bare JID whose `<extraParams>` carries
the fields in the SDK's insertion order. Pure functions only; no I/O.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from .stanza import (
    NS_CLIENT,
    NS_DELAY,
    escape_attr,
    escape_text,
    local_name,
    parse_frame,
    qname,
    restore_crlf,
)

MODULE_IDENTIFIER = "WebRTCVideoChat"
DEFAULT_PLATFORM = "web"


class SignalType(enum.StrEnum):
    CALL = "call"
    ACCEPT = "accept"
    REJECT = "reject"
    HANG_UP = "hangUp"
    ICE_CANDIDATES = "iceCandidates"
    ICE_RESTART = "iceRestart"
    ICE_RESTART_ACCEPT = "iceRestartAccept"


class CallType(enum.IntEnum):
    VIDEO = 1
    AUDIO = 2


@dataclass
class IceCandidate:
    """One ICE candidate as the SDK sends it (`candidate` keeps its `candidate:` prefix)."""

    sdp_mline_index: int
    sdp_mid: str
    candidate: str


@dataclass
class Signal:
    """One call signal; `extra` keeps unknown top-level fields as text, in order."""

    signal_type: str
    session_id: str
    call_type: int | None = None
    caller_id: int | None = None
    opponents_ids: list[int] | None = None
    sdp: str | None = None
    ice_candidates: list[IceCandidate] | None = None
    user_info: dict[str, Any] = field(default_factory=dict)
    platform: str = DEFAULT_PLATFORM
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class SignalMessage:
    """A decoded signalling `<message>` with its addressing."""

    signal: Signal
    to: str
    sender: str
    id: str
    delayed: bool


def _element(name: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_element(k, v) for k, v in value.items())
        return f"<{name}>{inner}</{name}>"
    if value is None:
        return f"<{name}></{name}>"
    if isinstance(value, bool):
        value = "true" if value else "false"  # JS String(true)
    return f"<{name}>{escape_text(str(value))}</{name}>"


def encode_extra_params(signal: Signal) -> str:
    """Return the `<extraParams>` element in the SDK's field order."""
    parts: list[str] = []
    user_info = {k: v for k, v in signal.user_info.items() if not (k == "maxBandwidth" and not v)}
    if user_info:
        parts.append(_element("userInfo", user_info))
    parts.append(_element("sessionID", signal.session_id))
    if signal.call_type is not None:
        parts.append(_element("callType", int(signal.call_type)))
    if signal.caller_id is not None:
        parts.append(_element("callerID", signal.caller_id))
    if signal.opponents_ids is not None:
        ids = "".join(_element("opponentID", i) for i in signal.opponents_ids)
        parts.append(f"<opponentsIDs>{ids}</opponentsIDs>")
    if signal.sdp is not None:
        parts.append(_element("sdp", signal.sdp))
    if signal.ice_candidates is not None:
        items = "".join(
            "<iceCandidate>"
            # JS `String(value || '')` sends index 0 as an empty element.
            + _element("sdpMLineIndex", c.sdp_mline_index or "")
            + _element("sdpMid", c.sdp_mid)
            + _element("candidate", c.candidate)
            + "</iceCandidate>"
            for c in signal.ice_candidates
        )
        parts.append(f"<iceCandidates>{items}</iceCandidates>")
    parts.extend(_element(k, v) for k, v in signal.extra.items())
    parts.append(_element("moduleIdentifier", MODULE_IDENTIFIER))
    parts.append(_element("signalType", str(signal.signal_type)))
    parts.append(_element("platform", signal.platform))
    return f'<extraParams xmlns="{NS_CLIENT}">{"".join(parts)}</extraParams>'


def encode_message(signal: Signal, to: str, message_id: str) -> str:
    """Return the full headline `<message>` carrying the signal, as the SDK serialises it."""
    return (
        f'<message to="{escape_attr(to)}" type="headline" id="{escape_attr(message_id)}"'
        f' xmlns="{NS_CLIENT}">{encode_extra_params(signal)}</message>'
    )


def _text(element: ET.Element) -> str:
    return element.text or ""


def _int(element: ET.Element, name: str) -> int:
    text = _text(element).strip()
    try:
        return int(text) if text else 0
    except ValueError:
        raise ValueError(f"signal field {name} is not an integer: {text!r}") from None


def _nested(element: ET.Element) -> dict[str, Any] | str:
    children = list(element)
    if not children:
        return _text(element)
    return {local_name(c): _nested(c) for c in children}


def decode_extra_params(extra: ET.Element) -> Signal | None:
    """Return the signal in an `<extraParams>` element, or None if it is not call signalling.

    Raise ValueError when the element claims to be call signalling but is malformed.
    """
    fields = {local_name(c): c for c in extra}
    module = fields.get("moduleIdentifier")
    if module is None or _text(module) != MODULE_IDENTIFIER:
        return None
    if "signalType" not in fields or "sessionID" not in fields:
        raise ValueError("call signal without signalType or sessionID")
    signal = Signal(signal_type=_text(fields["signalType"]), session_id=_text(fields["sessionID"]))
    for name, child in fields.items():
        if name in ("moduleIdentifier", "signalType", "sessionID"):
            continue
        if name == "callType":
            signal.call_type = _int(child, name)
        elif name == "callerID":
            signal.caller_id = _int(child, name)
        elif name == "opponentsIDs":
            signal.opponents_ids = [_int(c, name) for c in child]
        elif name == "sdp":
            signal.sdp = restore_crlf(_text(child))
        elif name == "iceCandidates":
            signal.ice_candidates = []
            for cand in child:
                parts = {local_name(p): p for p in cand}
                signal.ice_candidates.append(
                    IceCandidate(
                        sdp_mline_index=_int(parts["sdpMLineIndex"], "sdpMLineIndex")
                        if "sdpMLineIndex" in parts else 0,
                        sdp_mid=_text(parts["sdpMid"]) if "sdpMid" in parts else "",
                        candidate=_text(parts["candidate"]) if "candidate" in parts else "",
                    )
                )
        elif name == "userInfo":
            info = _nested(child)
            signal.user_info = info if isinstance(info, dict) else {}
        elif name == "platform":
            signal.platform = _text(child)
        else:
            signal.extra[name] = _text(child)
    return signal


def decode_message(message: ET.Element | str) -> SignalMessage | None:
    """Decode a `<message>` (element or raw frame); None when it carries no call signal."""
    if isinstance(message, str):
        message = parse_frame(message)
    if local_name(message) != "message":
        return None
    extra = message.find(qname(NS_CLIENT, "extraParams"))
    if extra is None:
        extra = message.find("extraParams")
    if extra is None:
        return None
    signal = decode_extra_params(extra)
    if signal is None:
        return None
    return SignalMessage(
        signal=signal,
        to=message.get("to", ""),
        sender=message.get("from", ""),
        id=message.get("id", ""),
        delayed=message.find(qname(NS_DELAY, "delay")) is not None,
    )
