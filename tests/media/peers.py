"""Real peers for media-session tests: a UDP phone that speaks PCMU RTP, and an aiortc app."""

from __future__ import annotations

import asyncio
import fractions
import struct
import time

import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from connectycube.ice import apply_host_addresses
from media.rtp import g711
from media.rtp.dtmf import event_packets
from media.rtp.packet import build_rtp, parse_header
from media.session.hooks import EncodedTrack

LOOPBACK = ["127.0.0.1"]
FRAME = 160  # 20 ms at 8 kHz


def tone(frequency: float, start: int, count: int, rate: int = 8000,
         amplitude: float = 0.5) -> np.ndarray:
    t = (np.arange(count) + start) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def stamp(payload: bytes, counter: int) -> bytes:
    """Put a counter in the first two bytes of a payload, so that every payload is unique."""
    return struct.pack("!H", counter & 0xFFFF) + payload[2:]


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    samples = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def is_contiguous_run(received: list[bytes], sent: list[bytes]) -> bool:
    """True if `received` equals `sent[i:i+len(received)]` for some i."""
    if not received:
        return False
    try:
        start = sent.index(received[0])
    except ValueError:
        return False
    return sent[start:start + len(received)] == received


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, phone: PhoneSim) -> None:
        self.phone = phone

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.phone.received.append((parse_header(data), data, addr, time.time()))


class PhoneSim:
    """A SIP phone's media side: sends a PCMU tone every 20 ms, records everything it gets."""

    def __init__(self, frequency: float = 1000.0, ssrc: int = 0x1234_5678,
                 payload_type: int = 0, codec: str = "PCMU") -> None:
        self.frequency = frequency
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.codec = codec
        self.seq = 1000
        self.timestamp = 50_000
        self.samples_sent = 0
        self.sent_payloads: list[bytes] = []
        self.received: list[tuple] = []
        self.remote: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task | None = None

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=("127.0.0.1", 0))
        return self.port

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]

    async def move(self) -> int:
        """Continue the same stream from a new socket (a direct-media re-INVITE)."""
        self.transport.close()
        return await self.open()

    def offer(self, direction: str = "sendrecv") -> str:
        return (
            "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.port} RTP/AVP {self.payload_type} 8 101\r\n"
            f"a=rtpmap:{self.payload_type} {self.codec}/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
            f"a=ptime:20\r\na={direction}\r\n"
        )

    def send_frame(self) -> None:
        pcm = tone(self.frequency, self.samples_sent, FRAME)
        payload = stamp(g711.encode(self.codec, pcm), len(self.sent_payloads))
        self.sent_payloads.append(payload)
        self._send(self.payload_type, payload, self.timestamp)
        self.samples_sent += FRAME
        self.timestamp = (self.timestamp + FRAME) & 0xFFFFFFFF

    def _send(self, payload_type: int, payload: bytes, timestamp: int, marker: int = 0) -> None:
        data = build_rtp(payload_type, marker, self.seq, timestamp, self.ssrc, payload)
        self.seq = (self.seq + 1) & 0xFFFF
        self.transport.sendto(data, self.remote)

    def start(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        start = time.monotonic()
        frames = 0
        while True:
            self.send_frame()
            frames += 1
            await asyncio.sleep(max(0.0, start + frames * 0.02 - time.monotonic()))

    async def send_dtmf(self, digit: str) -> None:
        """Send one RFC 4733 digit in-band, with the timestamp of the audio it replaces."""
        ts = self.timestamp
        for event, marker in event_packets(digit, 800, FRAME):
            self._send(101, bytes(event), ts, int(marker))
            await asyncio.sleep(0.02)

    def audio(self, payload_type: int = 0) -> list[bytes]:
        return [data[h.payload_offset:h.payload_end] for h, data, _, _ in self.received
                if h.payload_type == payload_type]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def close(self) -> None:
        await self.stop()
        if self.transport is not None:
            self.transport.close()


class ToneTrack(MediaStreamTrack):
    """A 48 kHz sine tone as decoded frames, paced in real time (aiortc encodes it)."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.frequency = frequency
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / 48000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = AudioFrame.from_ndarray(tone(self.frequency, self._pts, 960, 48000).reshape(1, -1),
                                        format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


class AppPeer:
    """The ConnectyCube app's side: an aiortc peer that sends a tone and records what it hears.

    With `encoded=True` it sends pre-encoded PCMU payloads (each unique, so the phone side can
    check them byte for byte); otherwise aiortc encodes a 48 kHz tone in the negotiated codec.
    """

    def __init__(self, frequency: float = 440.0, encoded: bool = True,
                 codecs: tuple[str, ...] | None = None) -> None:
        self.frequency = frequency
        self.pc = RTCPeerConnection()
        self.encoded = encoded
        self.codecs = codecs
        self.sent_payloads: list[bytes] = []
        self.received_payloads: list[bytes] = []
        self.samples: list[np.ndarray] = []
        self.sample_rate = 0
        self._tasks: list[asyncio.Task] = []
        if encoded:
            self.track: MediaStreamTrack = EncodedTrack(8000)
        else:
            self.track = ToneTrack(frequency)
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.kind == "audio")
        original = receiver._handle_rtp_packet

        async def observe(packet, arrival_time_ms):
            # Record the encoded payload, then let aiortc decode it as usual.
            self.received_payloads.append(bytes(packet.payload))
            await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = observe
        self._tasks.append(asyncio.ensure_future(self._record(track)))

    async def _record(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                data = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                self.sample_rate = frame.sample_rate
                self.samples.append(data.copy())
        except MediaStreamError:
            pass

    def _prefer(self, transceiver) -> None:
        if self.codecs:
            caps = RTCRtpSender.getCapabilities("audio").codecs
            transceiver.setCodecPreferences([c for n in self.codecs for c in caps if c.name == n])

    async def answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        self.pc.addTrack(self.track)
        self._prefer(self.pc.getTransceivers()[0])
        apply_host_addresses(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._start_sending()
        return self.pc.localDescription.sdp

    async def offer(self) -> str:
        transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
        self._prefer(transceiver)
        apply_host_addresses(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._start_sending()
        return self.pc.localDescription.sdp

    async def set_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    def _start_sending(self) -> None:
        if self.encoded:
            self._tasks.append(asyncio.ensure_future(self._send_encoded()))

    async def _send_encoded(self) -> None:
        start = time.monotonic()
        n = 0
        while True:
            pcm = tone(self.frequency, n * FRAME, FRAME)
            payload = stamp(g711.encode("PCMU", pcm), n)
            self.sent_payloads.append(payload)
            self.track.push(payload, n * FRAME)
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))

    def heard(self, skip: float = 0.2) -> np.ndarray:
        data = np.concatenate(self.samples) if self.samples else np.empty(0, np.int16)
        return data[int(skip * self.sample_rate):]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


async def wait_for(predicate, timeout: float = 10.0, step: float = 0.02) -> None:  # noqa: ASYNC109
    """Poll until `predicate()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)
