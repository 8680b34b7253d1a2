"""Stream direction in offer/answer (RFC 3264 §6.1, §8): mirror, read, re-issue with another.

``answer_sdp`` works on the parsed SDP. ``sdp_direction`` and ``with_direction`` are text edits,
so that any SDP we sent comes back byte for byte except the lines they change.
"""

from __future__ import annotations

import re

from .description import DIRECTIONS, SessionDescription

# RFC 3264 §6.1: the answer's direction mirrors the offer's.
_MIRROR = {"sendonly": "recvonly", "recvonly": "sendonly",
           "inactive": "inactive", "sendrecv": "sendrecv"}
DIRECTION_LINE = re.compile(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", re.M)


def mirror_direction(direction: str) -> str:
    """Return the answer direction for an offered one (sendonly <-> recvonly)."""
    try:
        return _MIRROR[direction]
    except KeyError:
        raise ValueError(f"unknown SDP direction: {direction!r}") from None


def answer_direction(offer: SessionDescription) -> str:
    """Return the direction an answer to ``offer``'s audio stream should carry."""
    audio = offer.audio
    return mirror_direction(offer.media_direction(audio) if audio else "sendrecv")


def answer_sdp(local: str, offer: str | None) -> str:
    """Return ``local`` re-issued as the answer to ``offer``: same media, mirrored direction.

    This is the default answer to a re-INVITE/UPDATE (Asterisk's direct-media
    re-INVITE moves the far end; the local media stays). The origin version
    goes up only when the SDP changes (RFC 3264 §8).
    """
    sdp = SessionDescription.parse(local)
    if offer is None:
        return local
    direction = answer_direction(SessionDescription.parse(offer))
    audio = sdp.audio
    current = sdp.media_direction(audio) if audio else "sendrecv"
    if audio is None or current == direction:
        return local
    audio.direction = direction
    sdp.bump_version()
    return str(sdp)


def sdp_direction(sdp: str | None) -> str:
    """Return the first direction attribute of an SDP, session or media level; sendrecv if none."""
    match = DIRECTION_LINE.search(sdp or "")
    return match.group(1) if match else "sendrecv"


def with_direction(sdp: str, direction: str) -> str:
    """Return the SDP with every direction line set to `direction` and the next o= version.

    A direction line is appended when there is none (in the last stream, or at session level
    without one). RFC 3264 §8 wants a new version for a changed SDP. Lines are CRLF-terminated
    whatever the input used. Raise ValueError for an empty SDP (there is nothing to re-issue)
    or an unknown direction.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown SDP direction: {direction!r}")
    if not sdp or not sdp.strip():
        raise ValueError("empty SDP")
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    out, placed = [], False
    for line in lines:
        if line.startswith("o="):
            parts = line.split(" ")
            if len(parts) >= 3 and parts[2].isdigit():
                parts[2] = str(int(parts[2]) + 1)
            line = " ".join(parts)
        elif DIRECTION_LINE.match(line):
            line, placed = f"a={direction}", True
        out.append(line)
    if not placed:
        out.append(f"a={direction}")
    return "\r\n".join(out) + "\r\n"
