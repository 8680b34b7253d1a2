"""ICE and SDP helpers that make aiortc talk to the ConnectyCube SDK (protocol doc section 5.5-5.6)."""

from __future__ import annotations

import asyncio
import re

import aioice
from aiortc import RTCIceCandidate, RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from .signalling import IceCandidate


def add_trickle_option(sdp: str) -> str:
    """Insert `a=ice-options:trickle` after each `a=ice-pwd` line that lacks it.

    Without it the SDK's `canTrickleIceCandidates` stays false and a browser callee never sends
    the candidates it gathers after answering.
    """
    lines = sdp.split("\r\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        if line.startswith("a=ice-pwd:"):
            section_rest = lines[i + 1:]
            end = next((j for j, x in enumerate(section_rest) if x.startswith("m=")),
                       len(section_rest))
            if "a=ice-options:trickle" not in section_rest[:end]:
                out.append("a=ice-options:trickle")
    return "\r\n".join(out)


def sdp_candidates(sdp: str) -> list[IceCandidate]:
    """Return the `a=candidate` lines of an SDP as SDK-style candidates, per media section."""
    candidates: list[IceCandidate] = []
    index = -1
    mid = ""
    for line in re.split(r"\r?\n", sdp):
        if line.startswith("m="):
            index += 1
            mid = str(index)
        elif line.startswith("a=mid:") and index >= 0:
            mid = line[len("a=mid:"):]
        elif line.startswith("a=candidate:") and index >= 0:
            candidates.append(IceCandidate(index, mid, line[len("a="):]))
    return candidates


def remote_candidate(candidate: IceCandidate) -> RTCIceCandidate:
    """Build an aiortc candidate; raise ValueError for a malformed candidate line."""
    text = candidate.candidate
    if text.startswith("candidate:"):
        text = text.split(":", 1)[1]
    try:
        result = candidate_from_sdp(text)
    except (AssertionError, ValueError, IndexError) as exc:
        raise ValueError(f"malformed ICE candidate {candidate.candidate!r}") from exc
    result.sdpMid = candidate.sdp_mid
    result.sdpMLineIndex = candidate.sdp_mline_index
    return result


class _HostAddressConnection(aioice.Connection):
    """An aioice connection that offers configured host addresses instead of scanning interfaces.

    aioice leaves 127.0.0.1 out of its scan (so loopback-only hosts and tests find no pair) and
    has no setting for it. Written against aioice 0.13; tests check the candidates it yields.
    """

    _host_addresses: list[str]

    async def gather_candidates(self) -> None:
        if not self._local_candidates_start:
            self._local_candidates_start = True
            results = await asyncio.gather(
                *(
                    self.get_component_candidates(component=c, addresses=self._host_addresses)
                    for c in self._components
                )
            )
            for candidates in results:
                self._local_candidates += candidates
            self._local_candidates_end = True


def apply_host_addresses(pc: RTCPeerConnection, addresses: list[str] | None) -> None:
    """Make every ICE gatherer of `pc` that has not gathered yet use `addresses` for host candidates.

    Call before each setLocalDescription; no-op when `addresses` is None.
    """
    if addresses is None:
        return
    transports = [t.sender.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        if dtls is None:
            continue
        connection = dtls.transport.iceGatherer._connection
        if not isinstance(connection, _HostAddressConnection) and not (
            connection._local_candidates_start
        ):
            connection.__class__ = _HostAddressConnection
            connection._host_addresses = list(addresses)
