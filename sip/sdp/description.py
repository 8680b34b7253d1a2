"""Parse and serialise whole SDP bodies (RFC 4566), the SIP stack's view of an offer or answer.

Audio-centred: connection, m= lines with payload types, rtpmap, fmtp, ptime,
direction and telephone-event. Lines this module does not model are kept in
order so that a parse/serialise round trip loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .codec import RFC3551_STATIC, Codec

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
MAX_SDP_LINES = 500


def _connection_address(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise ValueError(f"bad c= line: {value!r}")
    return parts[2].split("/")[0]


@dataclass
class MediaDescription:
    kind: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    rtpmap: dict[int, Codec] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str | None = None
    ptime: int | None = None
    other: list[str] = field(default_factory=list)  # unmodelled lines, verbatim "x=..."

    @property
    def payload_types(self) -> list[int]:
        return [int(f) for f in self.formats if f.isdigit()]

    def codec(self, payload_type: int) -> Codec | None:
        """Return the format of a payload type, including static ones (RFC 3551)."""
        if payload_type in self.rtpmap:
            return self.rtpmap[payload_type]
        return RFC3551_STATIC.get(payload_type)

    def find(self, encoding: str, clock_rate: int | None = None) -> int | None:
        """Return the first payload type with that encoding name, or None."""
        for pt in self.payload_types:
            codec = self.codec(pt)
            if codec and codec.name.lower() == encoding.lower() and (
                clock_rate is None or codec.clock_rate == clock_rate
            ):
                return pt
        return None

    @property
    def telephone_event(self) -> int | None:
        return self.find("telephone-event", 8000)

    def lines(self) -> list[str]:
        out = [f"m={self.kind} {self.port} {self.proto} {' '.join(self.formats)}"]
        if self.connection:
            family = "IP6" if ":" in self.connection else "IP4"
            out.append(f"c=IN {family} {self.connection}")
        out += [line for line in self.other if line[0] in "bik"]
        for pt in self.payload_types:
            if pt in self.rtpmap:
                out.append(self.rtpmap[pt].rtpmap)
            if pt in self.fmtp:
                out.append(f"a=fmtp:{pt} {self.fmtp[pt]}")
        if self.ptime:
            out.append(f"a=ptime:{self.ptime}")
        out += [line for line in self.other if line[0] not in "bik"]
        if self.direction:
            out.append(f"a={self.direction}")
        return out


@dataclass
class SessionDescription:
    origin: str = "- 0 0 IN IP4 0.0.0.0"
    session_name: str = "-"
    connection: str | None = None
    timing: str = "0 0"
    direction: str | None = None
    other: list[str] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        """Parse SDP text; raise ValueError if it is malformed."""
        sdp = cls()
        lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
        if not lines or lines[0] != "v=0":
            raise ValueError("SDP must start with v=0")
        if len(lines) > MAX_SDP_LINES:
            raise ValueError("SDP too long")
        current: MediaDescription | None = None
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=":
                raise ValueError(f"bad SDP line: {line[:60]!r}")
            kind, value = line[0], line[2:]
            try:
                if kind == "m":
                    current = cls._parse_m(value)
                    sdp.media.append(current)
                elif kind == "c":
                    address = _connection_address(value)
                    if current:
                        current.connection = address
                    else:
                        sdp.connection = address
                elif kind == "a":
                    cls._parse_a(sdp, current, value, line)
                elif current is not None:
                    current.other.append(line)
                elif kind == "o":
                    sdp.origin = value
                elif kind == "s":
                    sdp.session_name = value
                elif kind == "t":
                    sdp.timing = value
                else:
                    sdp.other.append(line)
            except (IndexError, ValueError) as exc:
                raise ValueError(f"bad SDP line {line[:60]!r}: {exc}") from None
        return sdp

    @staticmethod
    def _parse_m(value: str) -> MediaDescription:
        parts = value.split()
        if len(parts) < 4:
            raise ValueError("m= needs kind, port, proto and formats")
        port = int(parts[1].split("/")[0])
        if not 0 <= port < 65536:
            raise ValueError("bad port")
        return MediaDescription(parts[0], port, parts[2], parts[3:])

    @staticmethod
    def _parse_a(sdp: SessionDescription, media: MediaDescription | None, value: str,
                 line: str) -> None:
        name, _, arg = value.partition(":")
        if name in DIRECTIONS:
            if media:
                media.direction = name
            else:
                sdp.direction = name
        elif media and name == "rtpmap":
            pt_text, _, codec = arg.partition(" ")
            parts = codec.strip().split("/")
            pt = int(pt_text)
            channels = int(parts[2]) if len(parts) > 2 else None
            media.rtpmap[pt] = Codec(parts[0], pt, int(parts[1]), channels)
        elif media and name == "fmtp":
            pt_text, _, params = arg.partition(" ")
            media.fmtp[int(pt_text)] = params.strip()
        elif media and name == "ptime":
            media.ptime = int(arg)
        elif media:
            media.other.append(line)
        else:
            sdp.other.append(line)

    @property
    def audio(self) -> MediaDescription | None:
        return next((m for m in self.media if m.kind == "audio"), None)

    def media_direction(self, media: MediaDescription) -> str:
        """Return the effective direction of a stream (media, then session, then sendrecv)."""
        return media.direction or self.direction or "sendrecv"

    def bump_version(self) -> None:
        """Increase the o= session version (RFC 3264 §8: a changed SDP needs a new one)."""
        parts = self.origin.split()
        if len(parts) == 6 and parts[2].isdigit():
            parts[2] = str(int(parts[2]) + 1)
            self.origin = " ".join(parts)

    def media_address(self, media: MediaDescription) -> str | None:
        return media.connection or self.connection

    def __str__(self) -> str:
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        lines += [line for line in self.other if line[0] in "iuep b"]
        if self.connection:
            family = "IP6" if ":" in self.connection else "IP4"
            lines.append(f"c=IN {family} {self.connection}")
        lines.append(f"t={self.timing}")
        lines += [line for line in self.other if line[0] not in "iuep b"]
        if self.direction:
            lines.append(f"a={self.direction}")
        for media in self.media:
            lines += media.lines()
        return "\r\n".join(lines) + "\r\n"
