"""An asyncio UDP endpoint for the SIP leg's RTP: port range, symmetric RTP, one continuous stream.

aiortc has no port-range setting, so the plain RTP side picks its own even port from a configured
range and reserves port+1 for RTCP (RFC 3550 section 11), whose datagrams it only counts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from .packet import build_rtp, parse_header
from .stats import ReceiveStats, SendStats

logger = logging.getLogger(__name__)

BIND_ATTEMPTS = 64

# (payload type, marker, sequence number, timestamp, ssrc, payload, arrival time)
PacketHandler = Callable[[int, int, int, int, int, bytes, float], None]


class PortRangeExhausted(OSError):
    pass


@dataclass(frozen=True)
class PortRange:
    """Inclusive range of UDP ports for RTP; RTP takes the even port, RTCP the next one."""

    start: int = 10000
    end: int = 20000

    def __post_init__(self) -> None:
        if not 1024 <= self.start < self.end <= 65535:
            raise ValueError(f"bad RTP port range {self.start}-{self.end}")

    def candidates(self) -> list[int]:
        """Return a random sample of even ports whose odd neighbour is also in range."""
        first = self.start + (self.start % 2)
        evens = range(first, self.end, 2)
        return random.sample(evens, min(BIND_ATTEMPTS, len(evens)))


def bind_pair(host: str, ports: PortRange) -> tuple[socket.socket, socket.socket]:
    """Bind an RTP socket on an even port and an RTCP socket on the odd port above it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in ports.candidates():
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.setblocking(False)
        rtcp.setblocking(False)
        return rtp, rtcp
    raise PortRangeExhausted(f"no free RTP port pair in {ports.start}-{ports.end} on {host}")


class Timeline:
    """Splice relayed RTP timestamps from changing sources onto one continuous timeline.

    A new source (an SSRC change, or `resplice()` after a pause) starts right after the last
    position, so the output never jumps back or leaps forward; within a source, gaps are kept.
    """

    def __init__(self, origin: int = 0) -> None:
        self._source: int | None = None
        self._offset = 0
        self.next = origin & 0xFFFFFFFF
        self.spliced = True

    def map(self, source: int, timestamp: int, samples: int) -> int:
        """Return the position of a packet of `samples` from `source` stamped `timestamp`."""
        if source != self._source:
            self._source = source
            self._offset = (self.next - timestamp) & 0xFFFFFFFF
            self.spliced = True
        out = (timestamp + self._offset) & 0xFFFFFFFF
        self.next = (out + samples) & 0xFFFFFFFF
        return out

    def advance(self, samples: int) -> int:
        """Return the position of a locally made packet and move on by `samples`."""
        out = self.next
        self.next = (out + samples) & 0xFFFFFFFF
        return out

    def resplice(self) -> None:
        """Make the next mapped packet, whatever its source, continue from the current position."""
        self._source = None


class OutgoingStream(Timeline):
    """Our RTP stream towards the phone: one SSRC, sequence and timestamp line for the whole call.

    Re-INVITEs change where packets go, never these numbers (RFC 3550 section 5.1 expects a
    source to keep them; phones and Asterisk resync their jitter buffers badly otherwise).
    """

    def __init__(self) -> None:
        super().__init__(random.getrandbits(32))
        self.ssrc = random.getrandbits(32)
        self.sequence = random.getrandbits(15)  # low half: avoids an early wrap (as aiortc does)

    def next_sequence(self) -> int:
        seq = self.sequence
        self.sequence = (seq + 1) & 0xFFFF
        return seq


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, tuple], None]) -> None:
        self._handler = handler

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._handler(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the phone moves: not fatal for a media stream.
        logger.debug("RTP socket error: %s", exc)


class RtpEndpoint:
    """One RTP/RTCP socket pair on the SIP leg.

    Symmetric RTP: once a packet arrives, we send to wherever it came from (NAT, and Asterisk's
    direct-media moves), until `set_remote` names a new address for a re-INVITE.
    """

    def __init__(self, host: str, ports: PortRange, clock_rate: int = 8000) -> None:
        self.host = host
        self.ports = ports
        self.port = 0
        self.remote: tuple[str, int] | None = None
        self.latched = False
        self.sending = True
        self.receiving = True
        self.stream = OutgoingStream()
        self.received = ReceiveStats(clock_rate)
        self.sent = SendStats()
        self.rtcp_received = 0
        self.errors = 0
        self.on_packet: PacketHandler | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None

    async def open(self) -> tuple[str, int]:
        """Bind the socket pair and start receiving; return the local RTP address."""
        loop = asyncio.get_running_loop()
        rtp, rtcp = bind_pair(self.host, self.ports)
        self.port = rtp.getsockname()[1]
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._datagram_received), sock=rtp)
        self._rtcp_transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._rtcp_received), sock=rtcp)
        return self.host, self.port

    def set_remote(self, host: str, port: int) -> None:
        """Point the stream at a new address from SDP and let the next packet latch again."""
        self.remote = (host, port)
        self.latched = False

    def set_direction(self, direction: str) -> None:
        """Apply our direction towards the phone: stop sending and/or ignore what arrives."""
        self.sending = direction in ("sendrecv", "sendonly")
        self.receiving = direction in ("sendrecv", "recvonly")
        if self.sending:
            self.stream.spliced = True

    def send(self, payload_type: int, payload: bytes, timestamp: int, marker: int = 0) -> bool:
        """Send one packet of our stream; return False when on hold or with nowhere to send."""
        if not self.sending or self.remote is None or self._transport is None:
            return False
        if self.stream.spliced:
            marker = 1  # RFC 3551 section 4.1: first packet after a discontinuity
            self.stream.spliced = False
        data = build_rtp(payload_type, marker, self.stream.next_sequence(), timestamp,
                         self.stream.ssrc, payload)
        self._transport.sendto(data, self.remote)
        self.sent.add(len(payload))
        return True

    def _datagram_received(self, data: bytes, addr: tuple) -> None:
        if not self.receiving:
            return
        try:
            header = parse_header(data)
        except ValueError:
            self.errors += 1
            return
        if 72 <= header.payload_type + (header.marker << 7) <= 76:
            # RTCP multiplexed on the RTP port (RFC 5761): counted, not relayed.
            self.rtcp_received += 1
            return
        arrival = time.time()
        if not self.latched:
            # Latch once per signalled address; later strays are relayed but do not steer us.
            self.remote = addr[:2]
            self.latched = True
        payload = data[header.payload_offset:header.payload_end]
        self.received.add(header.ssrc, header.sequence_number, header.timestamp, len(payload),
                          arrival)
        if self.on_packet is not None:
            self.on_packet(header.payload_type, header.marker, header.sequence_number,
                           header.timestamp, header.ssrc, payload, arrival)

    def _rtcp_received(self, data: bytes, addr: tuple) -> None:
        self.rtcp_received += 1

    def close(self) -> None:
        """Close both sockets; safe to call twice."""
        for transport in (self._transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._transport = None
        self._rtcp_transport = None
