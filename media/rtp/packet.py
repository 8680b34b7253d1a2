"""Parse and serialise RTP/RTCP; full parsing reuses aiortc's, the hot path packs headers itself."""

from __future__ import annotations

import struct

from aiortc.rtp import RtcpPacket, RtpPacket, is_rtcp

__all__ = [
    "RTP_HEADER",
    "RtcpPacket",
    "RtpHeader",
    "RtpPacket",
    "build_rtp",
    "is_rtcp",
    "parse_header",
]

RTP_HEADER = struct.Struct("!BBHII")
RTP_VERSION = 2


class RtpHeader:
    """The fixed RTP header fields of a packet, and where its payload starts and ends."""

    __slots__ = ("marker", "payload_end", "payload_offset", "payload_type", "sequence_number",
                 "ssrc", "timestamp")

    def __init__(self, payload_type: int, marker: int, sequence_number: int, timestamp: int,
                 ssrc: int, payload_offset: int, payload_end: int) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload_offset = payload_offset
        self.payload_end = payload_end


def parse_header(data: bytes) -> RtpHeader:
    """Parse the header of an RTP packet (CSRCs, extension and padding skipped); raise ValueError.

    Cheaper than `RtpPacket.parse`, which also decodes header extensions the SIP leg never uses.
    """
    if len(data) < 12:
        raise ValueError(f"RTP packet length is less than 12 bytes ({len(data)})")
    first, second, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise ValueError(f"RTP packet has invalid version {first >> 6}")
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            raise ValueError("RTP packet has a truncated header extension")
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if first & 0x20:
        if end == 0 or data[-1] == 0:
            raise ValueError("RTP packet has invalid padding")
        end -= data[-1]
    if offset > end:
        raise ValueError("RTP packet is shorter than its header")
    return RtpHeader(second & 0x7F, second >> 7, seq, ts, ssrc, offset, end)


def build_rtp(payload_type: int, marker: int, sequence_number: int, timestamp: int, ssrc: int,
              payload: bytes) -> bytes:
    """Serialise an RTP packet with no CSRC, extension or padding."""
    return RTP_HEADER.pack(0x80, (marker << 7) | payload_type, sequence_number, timestamp,
                           ssrc) + payload
