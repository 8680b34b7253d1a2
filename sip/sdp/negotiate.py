"""Read the far end's audio stream and choose the codec: the media worker's view of an SDP.

Only what a G.711 bridge needs: one audio stream, static payload types for PCMU/PCMA/G722 and a
dynamic telephone-event. Anything unparseable raises ValueError with the offending line. This
reader is deliberately more lenient than ``SessionDescription.parse`` about the SDP around the
audio stream (no v=0 needed, other streams skipped) and stricter about the stream itself (an IP
address in c=, payload types below 128).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .codec import AUDIO_CODECS, STATIC, Codec
from .description import DIRECTIONS

# RFC 3264 section 8.4: a null connection address is the old way to put a stream on hold.
NULL_HOSTS = ("0.0.0.0", "::")  # noqa: S104 - compared against, never bound


@dataclass
class AudioDescription:
    """The audio stream of one SDP body."""

    host: str
    port: int
    codecs: list[Codec]
    telephone_event: Codec | None = None
    direction: str = "sendrecv"
    ptime: int | None = None
    other: list[int] = field(default_factory=list)  # payload types offered that we do not know

    @property
    def on_hold(self) -> bool:
        return self.direction != "sendrecv" or self.port == 0 or self.host in NULL_HOSTS


def parse_audio(sdp: str) -> AudioDescription:
    """Return the first audio stream of an SDP body; raise ValueError if missing or malformed."""
    session_host: str | None = None
    session_direction = "sendrecv"
    media: dict | None = None
    for raw in re.split(r"\r?\n", sdp):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise ValueError(f"malformed SDP line {line!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            if media is not None:
                break  # only the first audio stream matters
            parts = value.split()
            if len(parts) < 4 or parts[0] != "audio":
                continue
            try:
                port = int(parts[1].split("/")[0])
                pts = [int(p) for p in parts[3:]]
            except ValueError as exc:
                raise ValueError(f"malformed m= line {line!r}") from exc
            if not 0 <= port < 65536 or any(not 0 <= p < 128 for p in pts):
                raise ValueError(f"out-of-range value in {line!r}")
            media = {"port": port, "pts": pts, "rtpmap": {}, "host": None,
                     "direction": None, "ptime": None}
        elif kind == "c":
            parts = value.split()
            if len(parts) != 3 or parts[0] != "IN":
                raise ValueError(f"malformed c= line {line!r}")
            host = parts[2].split("/")[0]
            try:
                ipaddress.ip_address(host)
            except ValueError as exc:
                raise ValueError(f"c= line is not an IP address: {line!r}") from exc
            if media is None:
                session_host = host
            else:
                media["host"] = host
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name in DIRECTIONS:
                if media is None:
                    session_direction = name
                else:
                    media["direction"] = name
            elif media is not None and name == "rtpmap":
                match = re.fullmatch(r"(\d+) ([\w.\-]+)/(\d+)(?:/\d+)?", arg.strip())
                if not match:
                    raise ValueError(f"malformed rtpmap {line!r}")
                media["rtpmap"][int(match[1])] = (match[2], int(match[3]))
            elif media is not None and name == "ptime":
                try:
                    media["ptime"] = int(float(arg))
                except ValueError as exc:
                    raise ValueError(f"malformed ptime {line!r}") from exc
    if media is None:
        raise ValueError("SDP has no audio stream")
    host = media["host"] or session_host
    if host is None:
        raise ValueError("SDP has no connection address for audio")
    codecs: list[Codec] = []
    event: Codec | None = None
    other: list[int] = []
    for pt in media["pts"]:
        name, rate = media["rtpmap"].get(pt, (None, None))
        if name is None:
            if pt in STATIC:
                codecs.append(STATIC[pt])
            else:
                other.append(pt)
        elif name.lower() == "telephone-event" and rate == 8000:
            event = Codec("telephone-event", pt)
        else:
            known = next((c for c in AUDIO_CODECS if c.name.lower() == name.lower()
                          and c.clock_rate == rate), None)
            if known is not None:
                codecs.append(Codec(known.name, pt, rate))
            else:
                other.append(pt)
    return AudioDescription(host, media["port"], codecs, event,
                            media["direction"] or session_direction, media["ptime"], other)


class NoCommonCodec(ValueError):
    """The far end offers no codec we support (SIP 488)."""


def choose_codec(remote: AudioDescription, supported: tuple[Codec, ...] = AUDIO_CODECS
                 ) -> Codec:
    """Pick the far end's most preferred codec that we also support; raise NoCommonCodec if none."""
    names = {c.name for c in supported}
    for codec in remote.codecs:
        if codec.name in names:
            return codec
    raise NoCommonCodec(f"no common audio codec (offered {[c.name for c in remote.codecs]})")
