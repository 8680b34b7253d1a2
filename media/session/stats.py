"""Per-leg figures for a session's ``get_stats``: each leg read from its own objects."""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection

from media.rtp.socket import RtpEndpoint
from sip.sdp import Codec

from .fastpath import FastPath
from .transcode import OPUS_CLOCK


def rtp_leg_stats(rtp: RtpEndpoint, codec: Codec | None, direction: str,
                  dtmf_received: int) -> dict[str, Any]:
    """Return the SIP leg's codec, addresses, packets and bytes each way, loss and jitter."""
    received = rtp.received
    return {
        "codec": codec.name if codec else None,
        "local": (rtp.host, rtp.port),
        "remote": rtp.remote,
        "direction": direction,
        "ssrc": rtp.stream.ssrc,
        "packets_sent": rtp.sent.packets,
        "bytes_sent": rtp.sent.bytes,
        "packets_received": received.packets,
        "bytes_received": received.bytes,
        "packets_lost": received.lost,
        "jitter_ms": received.jitter_ms,
        "dtmf_received": dtmf_received,
    }


async def webrtc_leg_stats(pc: RTCPeerConnection, codec: str | None,
                           fast: FastPath | None) -> dict[str, Any]:
    """Return the WebRTC leg's codec, state, packets each way, loss and jitter."""
    webrtc: dict[str, Any] = {
        "codec": codec,
        "state": pc.connectionState,
        "packets_sent": 0, "bytes_sent": 0,
        "packets_received": 0, "packets_lost": 0, "jitter_ms": 0.0,
    }
    if fast is not None:
        # Once the fast path carries the stream, aiortc's receive counters stop moving (its
        # send counters go on: the fast path keeps them for the RTCP sender reports).
        webrtc["packets_received"] = fast.received.packets
        webrtc["packets_lost"] = max(0, fast.received.lost)
        webrtc["jitter_ms"] = fast.received.jitter_ms
    if pc.connectionState != "closed":
        clock = OPUS_CLOCK if codec == "opus" else 8000
        for stats in (await pc.getStats()).values():
            if stats.type == "outbound-rtp":
                webrtc["packets_sent"] += stats.packetsSent
                webrtc["bytes_sent"] += stats.bytesSent
            elif stats.type == "inbound-rtp":
                webrtc["packets_received"] += stats.packetsReceived
                webrtc["packets_lost"] += stats.packetsLost
                webrtc["jitter_ms"] = max(webrtc["jitter_ms"], 1000 * stats.jitter / clock)
    return webrtc
