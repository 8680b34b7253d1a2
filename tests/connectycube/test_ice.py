"""Tests for connectycube.ice (SDP munging, candidate extraction, host addresses)."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection

from connectycube.ice import (
    add_trickle_option,
    apply_host_addresses,
    remote_candidate,
    sdp_candidates,
)
from connectycube.signalling import IceCandidate

SDP = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 0.0.0.0", "s=-", "t=0 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=mid:0", "a=ice-ufrag:abcd", "a=ice-pwd:0123456789",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:v1", "a=ice-ufrag:abcd", "a=ice-pwd:0123456789",
    "a=ice-options:trickle",
    "a=candidate:2 1 udp 2130706431 127.0.0.1 5002 typ host", "",
])


def test_it_adds_trickle_after_each_ice_pwd_once():
    out = add_trickle_option(SDP)
    assert out.count("a=ice-options:trickle") == 2
    assert "a=ice-pwd:0123456789\r\na=ice-options:trickle\r\na=candidate:1" in out
    assert add_trickle_option(out) == out


def test_it_extracts_candidates_per_media_section():
    assert sdp_candidates(SDP) == [
        IceCandidate(0, "0", "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"),
        IceCandidate(1, "v1", "candidate:2 1 udp 2130706431 127.0.0.1 5002 typ host"),
    ]


def test_it_builds_remote_candidates():
    c = remote_candidate(IceCandidate(0, "0", "candidate:1 1 udp 2130706431 10.0.0.1 5000 "
                                              "typ host generation 0 ufrag C2Cz network-id 1"))
    assert (c.ip, c.port, c.type, c.sdpMid, c.sdpMLineIndex) == ("10.0.0.1", 5000, "host", "0", 0)
    with pytest.raises(ValueError):
        remote_candidate(IceCandidate(0, "0", "candidate:garbage"))


async def test_it_gathers_only_the_configured_host_addresses():
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        apply_host_addresses(pc, ["127.0.0.1"])
        await pc.setLocalDescription(await pc.createOffer())
        hosts = {c.candidate.split()[4] for c in sdp_candidates(pc.localDescription.sdp)}
        assert hosts == {"127.0.0.1"}
    finally:
        await pc.close()
