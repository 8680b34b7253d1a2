"""Relay one audio stream through an aiortc peer connection without aiortc's per-packet machinery.

Profiling 100 bridged G.711 calls (py-spy, bench/media_capacity.py) showed most of a call's CPU in
aiortc's packet plumbing rather than in the relay: per packet received, a STUN parse that fails by
exception, an asyncio.Queue hop into the DTLS transport's reader task, a full RTP parse with header
extensions and the receiver's statistics; per packet sent, a future to wake the sender task, an
`RtpPacket` built and serialised with abs-send-time from a datetime. Once DTLS is up, `FastPath`
does the same work inline on the datagram callback: RFC 7983 demultiplexing by first byte, SRTP
unprotect, a 12-byte header parse, the sink; and on send, a prebuilt header extension block, SRTP
protect and `sendto` on the nominated ICE pair. Everything else (STUN, consent, DTLS, RTCP, packets
of other payload types) still takes aiortc's own path, and the sender's counters stay right for its
RTCP sender reports.

Like `hooks`, this reaches into aiortc 1.16 and aioice internals; `check_fastpath()` fails loudly
if an upgrade moves them.
"""

from __future__ import annotations

import functools
import inspect
import random
import time
from collections.abc import Callable

import aioice
import pylibsrtp
from aioice import ice
from aiortc import RTCRtpReceiver, RTCRtpSender, clock, rtcdtlstransport
from aiortc.rtp import RtpPacket

from media.rtp.packet import RTP_HEADER, parse_header
from media.rtp.stats import ReceiveStats, SendStats

from .hooks import HookMissing

# (payload type, marker, sequence number, timestamp, ssrc, payload)
RtpSink = Callable[[int, int, int, int, int, bytes], None]

RTP_COMPONENT = 1
# RTCP sender reports pair an NTP time with an RTP timestamp; refreshing the pair every
# second is plenty and keeps a datetime call off the per-packet path.
SR_REFRESH_PACKETS = 50


@functools.cache
def check_fastpath() -> None:
    """Raise HookMissing unless aiortc and aioice still have what `FastPath` relies on."""
    problems = []
    dtls_source = inspect.getsource(rtcdtlstransport.RTCDtlsTransport)
    for needle in ("self._rx_srtp", "self._tx_srtp", "self._state = state"):
        if needle not in dtls_source:
            problems.append(f"RTCDtlsTransport lost {needle!r}")
    run_rtp = inspect.getsource(RTCRtpSender._run_rtp)
    for needle in ("self.__packet_count += 1", "self.__octet_count", "self.__rtp_timestamp",
                   "self.__ntp_timestamp", "packet.extensions.mid = self.__mid"):
        if needle not in run_rtp:
            problems.append(f"RTCRtpSender._run_rtp lost {needle!r}")
    if "self.__codecs" not in inspect.getsource(RTCRtpReceiver._handle_rtp_packet):
        problems.append("RTCRtpReceiver no longer keeps __codecs")
    connection_source = inspect.getsource(ice.Connection)
    for needle in ("def data_received(self, data: bytes, component: int)", "self._nominated",
                   "self._protocols"):
        if needle not in connection_source:
            problems.append(f"aioice Connection lost {needle!r}")
    if "self.receiver.data_received(" not in inspect.getsource(ice.StunProtocol.datagram_received):
        problems.append("aioice StunProtocol no longer hands data to receiver.data_received")
    if problems:
        raise HookMissing(f"aiortc/aioice {aioice.__version__}: " + "; ".join(problems))


class FastPath:
    """Send and receive one audio RTP stream of `sender`/`receiver`'s connection directly.

    Build it with the transceiver; call `start()` once the peer connection is connected (before
    that, `send` drops: there is no SRTP key yet, and stale audio is worse than none). `sink` gets
    every RTP packet of the receiver's payload types, from the fast path or, before `start()`,
    from `feed` (the receiver tap).
    """

    def __init__(self, sender: RTCRtpSender, receiver: RTCRtpReceiver, sink: RtpSink,
                 clock_rate: int = 8000) -> None:
        check_fastpath()
        self.sender = sender
        self.receiver = receiver
        self.sink = sink
        self.received = ReceiveStats(clock_rate)
        self.sent = SendStats()
        self.errors = 0
        self.started = False
        self._stopped = False
        self._sequence = random.getrandbits(15)
        self._timestamp_origin = random.getrandbits(32)
        self._extensions = b""
        self._first = 0x80
        self._tx_srtp: pylibsrtp.Session | None = None
        self._rx_srtp: pylibsrtp.Session | None = None
        self._pair: ice.CandidatePair | None = None
        self._connection: ice.Connection | None = None
        self._original_data_received: Callable[[bytes, int], None] | None = None
        self._payload_types: frozenset[int] = frozenset()

    def set_clock_rate(self, clock_rate: int) -> None:
        self.received = ReceiveStats(clock_rate)

    # setup

    def start(self) -> bool:
        """Take over the stream once DTLS is up; return False if it is not (yet)."""
        if self.started:
            return True
        if self._stopped:
            return False
        dtls = self.sender.transport
        if dtls is None or dtls.state != "connected" or dtls._tx_srtp is None \
                or dtls._rx_srtp is None:
            return False
        connection = dtls.transport._connection
        pair = connection._nominated.get(RTP_COMPONENT)
        codecs = self.receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        mid = self.sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        if pair is None or not codecs or mid is None:
            return False  # sender.send()/receiver.receive() run just after DTLS connects
        self._tx_srtp, self._rx_srtp = dtls._tx_srtp, dtls._rx_srtp
        self._pair = pair
        self._payload_types = frozenset(codecs)
        # The header extension block aiortc would write (the MID, so that the app can route
        # by it as well as by SSRC), built once.
        template = RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0)
        template.extensions.mid = mid
        serialised = template.serialize(
            self.sender._RTCRtpSender__rtp_header_extensions_map)  # type: ignore[attr-defined]
        self._extensions = serialised[12:]
        self._first = serialised[0]
        self._connection = connection
        self._original_data_received = connection.data_received
        connection.data_received = self._data_received  # type: ignore[method-assign]
        for protocol in connection._protocols:
            protocol.datagram_received = functools.partial(self._datagram_received, protocol)
        self.started = True
        return True

    def stop(self) -> None:
        """Give the stream back to aiortc (before closing the peer connection)."""
        self._stopped = True
        if not self.started:
            return
        self.started = False
        if self._connection is not None and self._original_data_received is not None:
            self._connection.data_received = self._original_data_received  # type: ignore[method-assign]
            for protocol in self._connection._protocols:
                protocol.__dict__.pop("datagram_received", None)
        self._pair = None

    # receive

    def _datagram_received(self, protocol: ice.StunProtocol, data: bytes, addr: tuple) -> None:
        # RFC 7983: 128-191 is RTP/RTCP; only those skip the STUN parse aioice tries first.
        if data and 127 < data[0] < 192:
            self._data_received(data, protocol.local_candidate.component)
        else:
            ice.StunProtocol.datagram_received(protocol, data, addr)

    def _data_received(self, data: bytes, component: int) -> None:
        if not (self.started and len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 224):
            self._original_data_received(data, component)  # DTLS, RTCP: aiortc's reader task
            return
        try:
            plain = self._rx_srtp.unprotect(data)
            header = parse_header(plain)
        except (pylibsrtp.Error, ValueError):
            self.errors += 1  # a replay, a bad tag or a mangled packet: drop it, as aiortc does
            return
        if header.payload_type not in self._payload_types:
            self._original_data_received(data, component)
            return
        payload = plain[header.payload_offset:header.payload_end]
        self.received.add(header.ssrc, header.sequence_number, header.timestamp, len(payload),
                          time.time())
        self.sink(header.payload_type, header.marker, header.sequence_number, header.timestamp,
                  header.ssrc, payload)

    def feed(self, packet: RtpPacket) -> None:
        """Give the sink a packet aiortc parsed (the receiver tap, before `start()`)."""
        self.sink(packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp,
                  packet.ssrc, packet.payload)

    # send

    def send(self, payload_type: int, payload: bytes, timestamp: int, marker: int = 0) -> bool:
        """Send one RTP packet to the app; return False when the stream is not up (yet)."""
        pair = self._pair
        if pair is None:
            if not self.start():
                return False
            pair = self._pair
        sender = self.sender
        sequence = self._sequence
        self._sequence = (sequence + 1) & 0xFFFF
        timestamp = (timestamp + self._timestamp_origin) & 0xFFFFFFFF
        data = RTP_HEADER.pack(self._first, (marker << 7) | payload_type, sequence, timestamp,
                               sender._ssrc) + self._extensions + payload
        try:
            pair.protocol.transport.sendto(self._tx_srtp.protect(data), pair.remote_addr)
        except (pylibsrtp.Error, AttributeError, OSError):
            self.errors += 1  # the transport closed under us: the session is ending
            return False
        self.sent.add(len(payload))
        # What aiortc's sender loop keeps for its RTCP sender reports.
        count = sender._RTCRtpSender__packet_count + 1  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count = count  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += len(payload)  # type: ignore[attr-defined]
        if count % SR_REFRESH_PACKETS == 1:
            sender._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()  # type: ignore[attr-defined]
            sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        return True
