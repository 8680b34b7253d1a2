"""The two places where the bridge reaches into aiortc 1.16 to relay encoded audio untouched.

Send: aiortc's RTCRtpSender packs an `av.Packet` from its track as is (public since 1.6).
Receive: there is no public way to get encoded packets. Each RTCRtpReceiver hands complete frames
from its jitter buffer to a decoder thread (`decoder_worker` -> `get_decoder`), which costs a
thread hop per 20 ms frame, 80 ms of audio prefetch, and a decode the phone does not want. The
bridge replaces the receiver's jitter buffer with a tap that gives every depayloaded RTP packet
to a callback on the event loop, and stops the idle decoder thread. Statistics, RTCP and SSRC
routing stay aiortc's. `check_hooks()` fails loudly if an aiortc upgrade moves these internals.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import inspect
from collections import deque
from collections.abc import Callable

import aiortc
import av
from aiortc import rtcrtpreceiver, rtcrtpsender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

TESTED_AIORTC = "1.16.0"
# Packets waiting for the sender; the sender only starts once DTLS is up, and stale audio is
# worse than none, so the oldest go first.
TRACK_BACKLOG = 5


class HookMissing(RuntimeError):
    pass


@functools.cache
def check_hooks() -> None:
    """Raise HookMissing unless aiortc still has the internals the passthrough relies on."""
    problems = []
    receive_source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    if "self.__jitter_buffer.add(packet)" not in receive_source:
        problems.append("RTCRtpReceiver._handle_rtp_packet no longer feeds __jitter_buffer.add")
    if not hasattr(RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder"):
        problems.append("RTCRtpReceiver.__stop_decoder is gone")
    if "__jitter_buffer = JitterBuffer" not in inspect.getsource(RTCRtpReceiver.__init__):
        problems.append("RTCRtpReceiver.__init__ no longer creates __jitter_buffer")
    if not callable(getattr(rtcrtpreceiver, "get_decoder", None)):
        problems.append("aiortc.rtcrtpreceiver.get_decoder is gone")
    send_source = inspect.getsource(rtcrtpsender.RTCRtpSender._next_encoded_frame)
    if "self.__encoder.pack(data)" not in send_source:
        problems.append("RTCRtpSender no longer packs pre-encoded av.Packet frames")
    if problems:
        raise HookMissing(
            f"aiortc {aiortc.__version__} (passthrough written for {TESTED_AIORTC}): "
            + "; ".join(problems)
        )


class _Tap:
    """Stands in for an RTCRtpReceiver's jitter buffer and hands each packet to `sink`."""

    def __init__(self, sink: Callable[[RtpPacket], None]) -> None:
        self.sink = sink

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self.sink(packet)
        return False, None


class TappedReceiver(RTCRtpReceiver):
    """An RTCRtpReceiver whose decoder thread stops as soon as it starts: nothing feeds it."""

    async def receive(self, parameters) -> None:
        await super().receive(parameters)
        self._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]


def tap_receiver(receiver: RTCRtpReceiver, sink: Callable[[RtpPacket], None]) -> None:
    """Deliver every RTP packet `receiver` gets to `sink`, on the loop, instead of decoding it.

    `packet.payload` is the encoded audio. Call before the connection starts receiving.
    """
    check_hooks()
    receiver.__class__ = TappedReceiver
    receiver._RTCRtpReceiver__jitter_buffer = _Tap(sink)  # type: ignore[attr-defined]


class EncodedTrack(MediaStreamTrack):
    """An audio track that yields pre-encoded `av.Packet`s, which aiortc sends without encoding."""

    kind = "audio"

    def __init__(self, clock_rate: int) -> None:
        super().__init__()
        self.time_base = fractions.Fraction(1, clock_rate)
        self._packets: deque[av.Packet] = deque(maxlen=TRACK_BACKLOG)
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = 0

    def push(self, data: bytes | av.Packet, pts: int) -> None:
        """Queue one encoded frame; `pts` counts samples of the RTP clock."""
        packet = data if isinstance(data, av.Packet) else av.Packet(data)
        packet.pts = pts
        packet.time_base = self.time_base
        if len(self._packets) == TRACK_BACKLOG:
            self.dropped += 1
        self._packets.append(packet)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> av.Packet:
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._packets.popleft()

    def stop(self) -> None:
        super().stop()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
