"""The media end of a ConnectyCube call, apart from its signalling.

`P2PCall` speaks the SDK's signalling and drives a `Peer` for the SDP and ICE work. `LocalPeer`
is an aiortc RTCPeerConnection in this process (clients, tests). The bridge's edge uses a peer
whose RTCPeerConnection lives on a media worker, so signalling stays in the edge and media on the
workers, as the design asks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from .ice import apply_host_addresses, remote_candidate
from .signalling import CallType, IceCandidate

IceStateHandler = Callable[[str], None]


class Peer(Protocol):
    """What a call needs from its media end. SDP strings use CRLF."""

    on_ice_state: IceStateHandler | None

    async def make_offer(self) -> str:
        """Create and apply a local offer; return it."""

    async def make_answer(self, offer: str) -> str:
        """Apply a remote offer, create and apply the answer; return it."""

    async def set_answer(self, answer: str) -> None:
        """Apply the remote answer to our offer."""

    def has_remote_description(self) -> bool:
        """Whether remote candidates can be added now."""

    async def add_candidates(self, candidates: list[IceCandidate]) -> list[str]:
        """Add remote candidates; return the errors of those that could not be added."""

    async def close(self) -> None:
        """Release the media (idempotent)."""


class LocalPeer:
    """An aiortc RTCPeerConnection in this process; attach tracks to `pc` before the offer/answer."""

    def __init__(self, *, ice_servers: list, host_addresses: list[str] | None, call_type: int) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self.host_addresses = host_addresses
        self.call_type = call_type
        self.on_ice_state: IceStateHandler | None = None
        self.pc.on("iceconnectionstatechange", self._ice_state_changed)

    def _ice_state_changed(self) -> None:
        if self.on_ice_state is not None:
            self.on_ice_state(self.pc.iceConnectionState)

    def _ensure_tracks(self) -> None:
        """Send what the call type promises; the SDK shows no remote stream otherwise."""
        kinds = {t.kind for t in self.pc.getTransceivers() if t.sender.track is not None}
        if "audio" not in kinds:
            self.pc.addTrack(AudioStreamTrack())
        if self.call_type == CallType.VIDEO and "video" not in kinds:
            self.pc.addTrack(VideoStreamTrack())

    async def make_offer(self) -> str:
        self._ensure_tracks()
        apply_host_addresses(self.pc, self.host_addresses)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def make_answer(self, offer: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        self._ensure_tracks()
        apply_host_addresses(self.pc, self.host_addresses)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def set_answer(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def has_remote_description(self) -> bool:
        return self.pc.remoteDescription is not None

    async def add_candidates(self, candidates: list[IceCandidate]) -> list[str]:
        errors = []
        for candidate in candidates:
            try:
                await self.pc.addIceCandidate(remote_candidate(candidate))
            except ValueError as exc:
                errors.append(str(exc))
        return errors

    async def close(self) -> None:
        await self.pc.close()
