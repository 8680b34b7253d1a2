"""One bridged call's media: the phone's plain RTP leg joined to the app's WebRTC leg.

The session relays encoded audio whenever both legs share a codec (G.711 passthrough), converts
mu-law <-> A-law by table when they share only G.711, and transcodes to Opus when asked to or
when the app offers no G.711. DTMF from the phone (RFC 4733) becomes a callback, since aiortc
cannot negotiate telephone-event with the app; `send_dtmf` plays digits towards the phone.

The session never decides when a call ends: it reports state changes, and its owner closes it.
"""

from __future__ import annotations

import enum
import fractions
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription
from pyee.asyncio import AsyncIOEventEmitter

from connectycube.ice import add_trickle_option, apply_host_addresses
from media.rtp import g711
from media.rtp.dtmf import DtmfDetector
from media.rtp.socket import PortRange, RtpEndpoint, Timeline
from sip.sdp import (
    AUDIO_CODECS,
    DIRECTIONS,
    NULL_HOSTS,
    TELEPHONE_EVENT,
    AudioDescription,
    Codec,
    SdpWriter,
    choose_codec,
    mirror_direction,
    parse_audio,
)

from .dtmf import DTMF_DURATION_MS, DtmfSender
from .fastpath import FastPath
from .hooks import EncodedTrack, check_hooks, tap_receiver
from .stats import rtp_leg_stats, webrtc_leg_stats
from .transcode import (
    DEFAULT_OPUS_BITRATE,
    DEFAULT_OPUS_COMPLEXITY,
    OpusToPhone,
    PhoneToOpus,
)

logger = logging.getLogger(__name__)

OPUS_FRAME = 960  # 20 ms at the Opus RTP clock
PASSTHROUGH_NAMES = ("PCMU", "PCMA", "G722")


class SessionState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"  # the WebRTC leg is negotiating ICE and DTLS
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class Mode(enum.Enum):
    """How audio crosses the bridge, decided once both legs have a codec."""

    PENDING = "pending"
    PASSTHROUGH = "passthrough"  # same codec both sides: payload bytes relayed untouched
    CONVERT = "convert"  # PCMU <-> PCMA by table, one byte per sample
    TRANSCODE = "transcode"  # phone codec <-> Opus


@dataclass
class SessionConfig:
    """Where the session binds and what it negotiates; one per worker, shared by its sessions."""

    rtp_host: str = "127.0.0.1"
    # The address written into our SIP SDP, when the bind address is not what the phone reaches.
    rtp_advertised_host: str | None = None
    rtp_ports: PortRange = field(default_factory=PortRange)
    # Host addresses for ICE; None lets aioice scan the interfaces (it skips 127.0.0.1).
    host_addresses: list[str] | None = None
    ice_servers: list[RTCIceServer] = field(default_factory=list)
    # Transcode to Opus even when the app could take G.711 (a mapping's "prefer Opus").
    prefer_opus: bool = False
    sip_codecs: tuple[Codec, ...] = AUDIO_CODECS
    telephone_event: Codec = TELEPHONE_EVENT
    opus_bitrate: int = DEFAULT_OPUS_BITRATE
    opus_complexity: int = DEFAULT_OPUS_COMPLEXITY


@dataclass(frozen=True)
class RtpLocal:
    """Our SIP-leg address and the SDP offer that advertises it."""

    host: str
    port: int
    codecs: list[Codec]
    sdp: str


def _first_audio_codec(sdp: str) -> tuple[str, int, int]:
    """Return (codec name, clock rate, payload type) of the first audio codec of an SDP answer."""
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "audio" and media.rtp.codecs:
            codec = media.rtp.codecs[0]
            return codec.name, codec.clockRate, codec.payloadType
    raise ValueError("the WebRTC answer has no audio codec")


def _offered_audio_codecs(sdp: str) -> list[str]:
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "audio":
            return [c.name for c in media.rtp.codecs]
    return []


class MediaSession(AsyncIOEventEmitter):
    """Bridge one SIP RTP leg and one WebRTC leg.

    Events: ``statechange`` (after `state` changes), ``dtmf`` (digit).
    """

    def __init__(self, config: SessionConfig, *,
                 on_dtmf: Callable[[str], None] | None = None) -> None:
        super().__init__()
        check_hooks()
        self.config = config
        self.state = SessionState.NEW
        self.mode = Mode.PENDING
        self.on_dtmf = on_dtmf
        self.rtp = RtpEndpoint(config.rtp_host, config.rtp_ports)
        self.rtp.on_packet = self._on_phone_packet
        self.phone: AudioDescription | None = None
        self.phone_codec: Codec | None = None
        self.phone_direction = "sendrecv"
        self.webrtc_codec: str | None = None
        self._webrtc_pt = 0
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(config.ice_servers)))
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.track = EncodedTrack(8000)
        self._transceiver: RTCRtpTransceiver | None = None
        self._fast: FastPath | None = None
        self._sdp = SdpWriter(config.rtp_advertised_host or config.rtp_host)
        self._dtmf = DtmfDetector(self._dtmf_received)
        self._phone_timeline = Timeline()
        self._to_opus: PhoneToOpus | None = None
        self._from_opus: OpusToPhone | None = None
        self._dtmf_sender = DtmfSender(self.rtp)
        self.dtmf_received: list[str] = []
        self.relay_errors = 0
        self.started_at = time.monotonic()

    # state

    def _set_state(self, state: SessionState) -> None:
        if state != self.state:
            logger.debug("MediaSession(%s) - %s -> %s", id(self), self.state.name, state.name)
            self.state = state
            self.emit("statechange")

    def _on_connection_state(self) -> None:
        if self.state == SessionState.CLOSED:
            return
        pc_state = self.pc.connectionState
        if pc_state == "connected":
            self._set_state(SessionState.CONNECTED)
        elif pc_state == "failed":
            self._set_state(SessionState.FAILED)

    # SIP leg

    async def prepare_rtp(self) -> RtpLocal:
        """Bind the RTP socket pair; return our address and an SDP offer of our SIP codecs."""
        self._check_open()
        if not self.rtp.port:
            await self.rtp.open()
        codecs = list(self.config.sip_codecs)
        host = self.config.rtp_advertised_host or self.config.rtp_host
        sdp = self._sdp.write(self.rtp.port, codecs, self.config.telephone_event)
        return RtpLocal(host, self.rtp.port, codecs, sdp)

    async def set_rtp_remote(self, remote: str | tuple[str, int], direction: str = "sendrecv",
                             codec: Codec | None = None) -> str | None:
        """Apply the phone's SDP (offer, answer or re-INVITE), or a bare address and `codec`.

        `direction` is the phone's, used with a bare address (an SDP carries its own). Return our
        SDP answer when given an SDP. Raise ValueError when the SDP is bad or shares no codec.
        """
        self._check_open()
        if not self.rtp.port:
            await self.rtp.open()
        if isinstance(remote, str):
            description = parse_audio(remote)
            chosen = choose_codec(description, self.config.sip_codecs)
            direction = description.direction
            if description.port == 0 or description.host in NULL_HOSTS:
                direction = "inactive"  # RFC 3264 hold by address, or a disabled stream
            host, port = description.host, description.port
            event = description.telephone_event
        else:
            if codec is None:
                raise ValueError("a bare RTP address needs a codec")
            host, port = remote
            chosen, description, event = codec, None, self.config.telephone_event
        self.phone = description
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        self.phone_direction = direction
        self._dtmf_sender.payload_type = event.payload_type if event else None
        if port:
            self.rtp.set_remote(host, port)
        ours = mirror_direction(direction)
        self.rtp.set_direction(ours)
        if self.phone_codec is None or chosen.name != self.phone_codec.name \
                or chosen.payload_type != self.phone_codec.payload_type:
            self.phone_codec = chosen
            self._configure_relay()
        if description is None:
            return None
        return self._sdp.write(self.rtp.port, [chosen], event, ours)

    def set_hold(self, direction: str) -> None:
        """Apply our direction towards the phone without a new SDP (sendonly: we only send)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        self.rtp.set_direction(direction)

    # WebRTC leg

    def _webrtc_preferences(self, offered: list[str] | None = None) -> list:
        """Return the codec capabilities to offer or answer with, best first."""
        capabilities = RTCRtpSender.getCapabilities("audio").codecs
        by_name = {c.name: c for c in capabilities}
        if self.config.prefer_opus:
            names = ["opus"]
        else:
            phone = self.phone_codec.name if self.phone_codec else None
            names = [phone] if phone in PASSTHROUGH_NAMES else []
            names += [n for n in ("PCMU", "PCMA") if n not in names]
            if offered is not None:
                names = [n for n in names if n in offered]
                if phone in names:
                    names = [phone]  # aiortc answers in the offer's order: leave it no choice
                if not names:
                    names = ["opus"]  # no G.711 from the app: transcode
        return [by_name[n] for n in names]

    def _attach(self, transceiver: RTCRtpTransceiver) -> None:
        self._transceiver = transceiver
        self._fast = FastPath(transceiver.sender, transceiver.receiver, self._on_app_packet)
        tap_receiver(transceiver.receiver, self._fast.feed)

    async def create_offer(self) -> str:
        """Return the SDP offer for the app (ICE candidates included, trickle advertised)."""
        self._check_open()
        if self._transceiver is None:
            transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
            transceiver.setCodecPreferences(self._webrtc_preferences())
            self._attach(transceiver)
        apply_host_addresses(self.pc, self.config.host_addresses)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._set_state(SessionState.CONNECTING)
        return add_trickle_option(self.pc.localDescription.sdp)

    async def set_answer(self, sdp: str) -> None:
        """Apply the app's answer to our offer."""
        self._check_open()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        self._set_webrtc_codec(*_first_audio_codec(sdp))

    async def accept_offer(self, sdp: str) -> str:
        """Apply the app's offer and return our answer."""
        self._check_open()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        transceiver = next((t for t in self.pc.getTransceivers() if t.kind == "audio"), None)
        if transceiver is None:
            raise ValueError("the app's offer has no audio")
        for other in self.pc.getTransceivers():
            if other.kind != "audio":
                other.direction = "inactive"  # no video bridge yet: do not receive and decode it
        if self._transceiver is None:
            transceiver.setCodecPreferences(
                self._webrtc_preferences(_offered_audio_codecs(sdp)))
            self.pc.addTrack(self.track)
            self._attach(transceiver)
        apply_host_addresses(self.pc, self.config.host_addresses)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = self.pc.localDescription.sdp
        self._set_webrtc_codec(*_first_audio_codec(answer))
        self._set_state(SessionState.CONNECTING)
        return add_trickle_option(answer)

    async def add_ice_candidate(self, candidate: RTCIceCandidate | None) -> None:
        """Add a remote ICE candidate trickled by the app (None: end of candidates)."""
        self._check_open()
        await self.pc.addIceCandidate(candidate)

    def _set_webrtc_codec(self, name: str, clock_rate: int, payload_type: int) -> None:
        self._webrtc_pt = payload_type
        if name != self.webrtc_codec:
            self.webrtc_codec = name
            self.track.time_base = fractions.Fraction(1, clock_rate)
            if self._fast is not None:
                self._fast.set_clock_rate(clock_rate)
            self._configure_relay()

    # relay

    def _configure_relay(self) -> None:
        """Choose passthrough, conversion or transcoding once both codecs are known."""
        phone, app = self.phone_codec, self.webrtc_codec
        self._to_opus = self._from_opus = None
        if phone is None or app is None:
            self.mode = Mode.PENDING
        elif app == phone.name:
            self.mode = Mode.PASSTHROUGH
        elif {app, phone.name} == {"PCMU", "PCMA"}:
            self.mode = Mode.CONVERT
        elif app == "opus":
            self.mode = Mode.TRANSCODE
            self._to_opus = PhoneToOpus(phone.name, self.config.opus_bitrate,
                                        self.config.opus_complexity)
            self._from_opus = OpusToPhone(phone.name)
        else:
            raise ValueError(f"cannot bridge {phone.name} with {app}")
        self._phone_timeline.resplice()
        self.rtp.stream.resplice()
        logger.debug("MediaSession(%s) relay %s: phone %s, app %s", id(self), self.mode.name,
                     phone.name if phone else None, app)

    def _on_phone_packet(self, payload_type: int, marker: int, seq: int, timestamp: int,
                         ssrc: int, payload: bytes, arrival: float) -> None:
        phone = self.phone_codec
        if payload_type == self._dtmf_sender.payload_type:
            try:
                self._dtmf.feed(ssrc, timestamp, payload)
            except ValueError:
                self.relay_errors += 1
            return
        if phone is None or payload_type != phone.payload_type:
            return  # comfort noise, or a codec we did not agree on
        fast = self._fast
        if fast is None:
            return
        mode = self.mode
        if mode is Mode.PASSTHROUGH:
            fast.send(self._webrtc_pt, payload, self._phone_timeline.map(ssrc, timestamp, len(payload)),
                      marker)
        elif mode is Mode.CONVERT:
            pts = self._phone_timeline.map(ssrc, timestamp, len(payload))
            fast.send(self._webrtc_pt, g711.convert(phone.name, self.webrtc_codec, payload), pts, marker)
        elif mode is Mode.TRANSCODE:
            for packet in self._to_opus.feed(payload):
                fast.send(self._webrtc_pt, bytes(packet), self._phone_timeline.advance(OPUS_FRAME))

    def _on_app_packet(self, payload_type: int, marker: int, seq: int, timestamp: int, ssrc: int,
                       payload: bytes) -> None:
        if self._dtmf_sender.playing or not self.rtp.sending:
            return
        phone = self.phone_codec
        mode = self.mode
        if mode is Mode.PASSTHROUGH:
            timestamp = self.rtp.stream.map(ssrc, timestamp, len(payload))
            self.rtp.send(phone.payload_type, payload, timestamp, marker)
        elif mode is Mode.CONVERT:
            timestamp = self.rtp.stream.map(ssrc, timestamp, len(payload))
            self.rtp.send(phone.payload_type, g711.convert(self.webrtc_codec, phone.name, payload),
                          timestamp, marker)
        elif mode is Mode.TRANSCODE:
            try:
                outputs = self._from_opus.feed(payload)
            except ValueError:
                self.relay_errors += 1
                return
            for out in outputs:
                self.rtp.send(phone.payload_type, out, self.rtp.stream.advance(len(out)))

    # DTMF

    def _dtmf_received(self, digit: str) -> None:
        self.dtmf_received.append(digit)
        if self.on_dtmf is not None:
            self.on_dtmf(digit)
        self.emit("dtmf", digit)

    async def send_dtmf(self, digits: str, duration_ms: int = DTMF_DURATION_MS) -> None:
        """Queue RFC 4733 digits towards the phone; raise ValueError for a non-DTMF character."""
        self._check_open()
        self._dtmf_sender.send(digits, duration_ms)

    async def wait_dtmf_sent(self) -> None:
        """Return once every queued digit has been sent."""
        await self._dtmf_sender.wait_sent()

    # stats

    async def get_stats(self) -> dict[str, Any]:
        """Return per-leg figures: codec, packets and bytes each way, loss and jitter."""
        rtp = rtp_leg_stats(self.rtp, self.phone_codec, self.phone_direction, len(self.dtmf_received))
        webrtc = await webrtc_leg_stats(self.pc, self.webrtc_codec, self._fast)
        return {"mode": self.mode.value, "state": self.state.value, "rtp": rtp,
                "webrtc": webrtc, "track_dropped": self.track.dropped,
                "relay_errors": self.relay_errors}

    # teardown

    def _check_open(self) -> None:
        if self.state == SessionState.CLOSED:
            raise ConnectionError("media session is closed")

    async def close(self) -> None:
        """Stop DTMF, close the RTP sockets and the peer connection; safe to call twice."""
        if self.state == SessionState.CLOSED:
            return
        self._set_state(SessionState.CLOSED)
        await self._dtmf_sender.stop()
        if self._fast is not None:
            self._fast.stop()
        self.rtp.close()
        self.track.stop()
        await self.pc.close()
