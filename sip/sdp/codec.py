"""RTP payload formats as SDP names them (a=rtpmap, RFC 4566 §6; static types per RFC 3551)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Codec:
    """An RTP payload format; `clock_rate` is the RTP clock, not the sample rate."""

    name: str
    payload_type: int
    clock_rate: int = 8000
    channels: int | None = None

    @property
    def rtpmap(self) -> str:
        """Return the a=rtpmap line for this format."""
        return f"a=rtpmap:{self}"

    def __str__(self) -> str:
        channels = f"/{self.channels}" if self.channels else ""
        return f"{self.payload_type} {self.name}/{self.clock_rate}{channels}"


PCMU = Codec("PCMU", 0)
PCMA = Codec("PCMA", 8)
G722 = Codec("G722", 9)  # RFC 3551: an 8000 Hz RTP clock for 16 kHz audio
G729 = Codec("G729", 18)  # static, but not one the bridge can carry
TELEPHONE_EVENT = Codec("telephone-event", 101)
# What the bridge carries on the SIP leg, in our order of preference.
AUDIO_CODECS = (PCMU, PCMA, G722)
STATIC = {c.payload_type: c for c in AUDIO_CODECS}
# Every static type an SDP may use without an rtpmap, bridgeable or not.
RFC3551_STATIC = {c.payload_type: c for c in (*AUDIO_CODECS, G729)}
