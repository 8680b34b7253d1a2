"""Tests for connectycube.signalling, using the SDK's literal stanzas as fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectycube.signalling import (
    CallType,
    IceCandidate,
    Signal,
    SignalType,
    decode_message,
    encode_message,
)

DATA = Path(__file__).parent / "data"
FIXTURES = ["call", "accept", "reject", "hangup", "icecandidates"]


def load(name: str) -> str:
    return (DATA / f"signal_{name}.xml").read_bytes().decode("utf-8")


@pytest.mark.parametrize("name", FIXTURES)
def test_it_round_trips_the_sdk_stanzas(name):
    raw = load(name)
    decoded = decode_message(raw)
    assert decoded is not None
    assert encode_message(decoded.signal, decoded.to, decoded.id) == raw


def test_it_decodes_a_call():
    msg = decode_message(load("call"))
    s = msg.signal
    assert msg.to == "1002-1@localhost"
    assert s.signal_type == SignalType.CALL
    assert s.session_id == "3a3b78c3-4971-48b5-afdb-cad5eeddc30a"
    assert (s.call_type, s.caller_id, s.opponents_ids) == (CallType.VIDEO, 1001, [1002])
    assert s.user_info == {"callerName": "Alice"}
    assert s.platform == "web"
    # The parser normalises CRLF to LF; the decoder restores it for the SDP.
    assert s.sdp.startswith("v=0\r\no=- 6892740753430607151 2 IN IP4 127.0.0.1\r\n")
    assert "\n" not in s.sdp.replace("\r\n", "")
    assert not msg.delayed


def test_it_maps_an_empty_sdp_mline_index_to_zero():
    s = decode_message(load("icecandidates")).signal
    assert [(c.sdp_mline_index, c.sdp_mid) for c in s.ice_candidates] == [(0, "0"), (1, "1")]
    assert s.ice_candidates[0].candidate.startswith("candidate:1624995238 1 udp")


def test_it_keeps_user_info_values_as_strings():
    s = decode_message(load("reject")).signal
    assert s.user_info == {"busy": "true"}
    assert s.call_type == CallType.AUDIO


def test_it_encodes_in_sdk_field_order():
    signal = Signal(
        signal_type=SignalType.ICE_CANDIDATES, session_id="s1", call_type=2, caller_id=1,
        opponents_ids=[2, 3],
        ice_candidates=[IceCandidate(0, "0", "candidate:1 1 udp 1 127.0.0.1 5000 typ host")],
        user_info={"a": {"b": True}, "maxBandwidth": 0}, extra={"custom": "x<y"},
    )
    xml = encode_message(signal, "2-9@d", "id1")
    assert xml == (
        '<message to="2-9@d" type="headline" id="id1" xmlns="jabber:client">'
        '<extraParams xmlns="jabber:client"><userInfo><a><b>true</b></a></userInfo>'
        "<sessionID>s1</sessionID><callType>2</callType><callerID>1</callerID>"
        "<opponentsIDs><opponentID>2</opponentID><opponentID>3</opponentID></opponentsIDs>"
        "<iceCandidates><iceCandidate><sdpMLineIndex></sdpMLineIndex><sdpMid>0</sdpMid>"
        "<candidate>candidate:1 1 udp 1 127.0.0.1 5000 typ host</candidate></iceCandidate>"
        "</iceCandidates><custom>x&lt;y</custom><moduleIdentifier>WebRTCVideoChat"
        "</moduleIdentifier><signalType>iceCandidates</signalType><platform>web</platform>"
        "</extraParams></message>"
    )
    back = decode_message(xml).signal
    assert back.user_info == {"a": {"b": "true"}}
    assert back.extra == {"custom": "x<y"}


def test_it_ignores_other_messages():
    assert decode_message('<message type="chat" xmlns="jabber:client"><body>hi</body></message>') \
        is None
    system = (
        '<message type="headline" xmlns="jabber:client"><extraParams xmlns="jabber:client">'
        "<moduleIdentifier>SystemNotifications</moduleIdentifier></extraParams></message>"
    )
    assert decode_message(system) is None


def test_it_flags_delayed_signals():
    raw = load("hangup").replace(
        "</message>", '<delay xmlns="urn:xmpp:delay" stamp="2024-01-01T00:00:00Z"/></message>'
    )
    assert decode_message(raw).delayed


@pytest.mark.parametrize(
    "raw",
    [
        "<message",
        '<message xmlns="jabber:client"><extraParams><moduleIdentifier>WebRTCVideoChat'
        "</moduleIdentifier></extraParams></message>",
        '<message xmlns="jabber:client"><extraParams><moduleIdentifier>WebRTCVideoChat'
        "</moduleIdentifier><signalType>call</signalType><sessionID>s</sessionID>"
        "<callerID>abc</callerID></extraParams></message>",
        '<!DOCTYPE x [<!ENTITY a "b">]><message/>',
    ],
)
def test_it_rejects_malformed_signals_with_value_error(raw):
    with pytest.raises(ValueError):
        decode_message(raw)
