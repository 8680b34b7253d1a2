"""Write our own SDP bodies: the SIP stack's one-stream offer, and the media worker's per-call writer."""

from __future__ import annotations

import time

from .codec import Codec
from .description import DIRECTIONS, MediaDescription, SessionDescription


def audio_offer(address: str, port: int, *, codecs: tuple[tuple[int, str, int], ...] = (
        (0, "PCMU", 8000), (8, "PCMA", 8000)), telephone_event: int | None = 101,
        direction: str = "sendrecv", session_id: int | None = None,
        version: int = 1) -> SessionDescription:
    """Build a one-stream audio SDP (also usable as an answer)."""
    session_id = session_id or int(time.time())
    family = "IP6" if ":" in address else "IP4"
    media = MediaDescription("audio", port, "RTP/AVP", [str(pt) for pt, _, _ in codecs])
    for pt, name, rate in codecs:
        media.rtpmap[pt] = Codec(name, pt, rate)
    if telephone_event is not None:
        media.formats.append(str(telephone_event))
        media.rtpmap[telephone_event] = Codec("telephone-event", telephone_event, 8000)
        media.fmtp[telephone_event] = "0-16"
    media.direction = direction
    return SessionDescription(
        origin=f"ccbridge {session_id} {version} IN {family} {address}",
        connection=address, media=[media],
    )


class SdpWriter:
    """Write our SDP bodies, keeping one origin session id and bumping its version per body."""

    def __init__(self, host: str, username: str = "ccbridge") -> None:
        self.host = host
        self.username = username
        self.session_id = int(time.time() * 1000) & 0x7FFFFFFF
        self.version = 0

    def write(self, port: int, codecs: list[Codec], telephone_event: Codec | None,
              direction: str = "sendrecv", ptime: int = 20) -> str:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        self.version += 1
        family = "IP6" if ":" in self.host else "IP4"
        pts = [c.payload_type for c in codecs]
        if telephone_event is not None:
            pts.append(telephone_event.payload_type)
        lines = [
            "v=0",
            f"o={self.username} {self.session_id} {self.version} IN {family} {self.host}",
            "s=ccbridge",
            f"c=IN {family} {self.host}",
            "t=0 0",
            f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}",
        ]
        lines += [c.rtpmap for c in codecs]
        if telephone_event is not None:
            lines.append(telephone_event.rtpmap)
            lines.append(f"a=fmtp:{telephone_event.payload_type} 0-16")
        lines += [f"a=ptime:{ptime}", f"a={direction}"]
        return "\r\n".join(lines) + "\r\n"
