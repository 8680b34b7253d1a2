"""Bad input is dropped or answered 400; the endpoint keeps serving afterwards."""

from __future__ import annotations

import pytest

from sip import SipEndpoint
from sip.message import MAX_MESSAGE_SIZE
from tests.sip.peer import Peer, sdp


async def still_alive(peer: Peer) -> None:
    peer.send(peer.request("OPTIONS", cseq=99))
    ok = await peer.expect(200)
    assert ok.cseq == (99, "OPTIONS")


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\xff" * 50,
    b"hello world\r\n\r\n",
    b"INVITE\r\n\r\n",
    b"SIP/2.0 200\r\n\r\n",
    b"INVITE sip:x@y SIP/2.0\r\nVia SIP/2.0/UDP no-colon\r\n\r\n",
    b"INVITE sip:x@y SIP/2.0\r\n continuation-first: x\r\n\r\n",
    "INVITE sip:x@y SIP/2.0\r\nVia: caf\u00e9\xff\r\n\r\n".encode("latin-1"),
    b"\r\n\r\n",
])
async def test_it_drops_garbage(endpoint: SipEndpoint, peer: Peer, garbage: bytes) -> None:
    peer.send(garbage)
    await still_alive(peer)


async def test_it_drops_a_huge_message(endpoint: SipEndpoint, peer: Peer) -> None:
    padding = "X-Padding: " + "a" * (MAX_MESSAGE_SIZE + 100) + "\n"
    peer.send(peer.request("OPTIONS", extra=padding))
    await still_alive(peer)


async def test_it_drops_too_many_headers(endpoint: SipEndpoint, peer: Peer) -> None:
    peer.send(peer.request("OPTIONS", extra="X-A: b\n" * 200))
    await still_alive(peer)


@pytest.mark.parametrize("drop", ["Call-ID", "From", "To", "CSeq"])
async def test_a_request_missing_a_header_gets_400(endpoint: SipEndpoint, peer: Peer,
                                                   drop: str) -> None:
    text = "\n".join(line for line in peer.request("INVITE", body=sdp()).split("\n")
                     if not line.startswith(drop + ":"))
    peer.send(text)
    bad = await peer.expect(400)
    assert drop in bad.reason
    await still_alive(peer)


async def test_a_request_missing_its_via_is_dropped(endpoint: SipEndpoint, peer: Peer) -> None:
    text = "\n".join(line for line in peer.request("OPTIONS").split("\n")
                     if not line.startswith("Via:"))
    peer.send(text)
    await still_alive(peer)


@pytest.mark.parametrize("cseq", ["abc INVITE", "1 BYE", "99999999999 INVITE", "1"])
async def test_a_bad_cseq_gets_400(endpoint: SipEndpoint, peer: Peer, cseq: str) -> None:
    text = peer.request("INVITE", body=sdp()).replace("CSeq: 1 INVITE", f"CSeq: {cseq}")
    peer.send(text)
    await peer.expect(400)
    await still_alive(peer)


async def test_a_body_shorter_than_its_content_length_is_dropped(
        endpoint: SipEndpoint, peer: Peer) -> None:
    text = peer.request("INVITE", body=sdp()).replace("Content-Length: ", "Content-Length: 9")
    peer.send(text)
    await still_alive(peer)


async def test_an_invite_with_a_broken_sdp_does_not_crash_the_dialog(
        endpoint: SipEndpoint, peer: Peer) -> None:
    calls = []
    endpoint.on_invite = lambda call: calls.append(call.answer("v=0\r\n"))
    peer.send(peer.request("INVITE", body="not sdp at all"))
    ok = await peer.expect(200, skip=(100,))
    peer.send(peer.ack_for(ok))
    peer.send(peer.request("INVITE", cseq=2, to_tag=ok.to.tag, body="garbage"))
    # The default answer cannot parse either side: a clean 500, not a crash.
    await peer.expect(500, skip=(100, 200))
    await still_alive(peer)


async def test_a_failing_application_callback_gets_500(endpoint: SipEndpoint, peer: Peer) -> None:
    def on_invite(call: object) -> None:
        raise RuntimeError("boom")

    endpoint.on_invite = on_invite
    peer.send(peer.request("INVITE", body=sdp()))
    await peer.expect(500, skip=(100,))
    await still_alive(peer)
