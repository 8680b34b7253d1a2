"""Raw-UDP conformance of the stack as the caller (the app -> phone direction)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from sip import (
    CallFailed,
    Credentials,
    DialogState,
    OutgoingCallState,
    SipEndpoint,
)
from sip.message import SipRequest
from tests.sip.peer import OUR_SDP, Peer, sdp


def uri(peer: Peer) -> str:
    return f"sip:1001@127.0.0.1:{peer.port}"


async def test_it_places_a_call_and_acks_every_2xx(endpoint: SipEndpoint, peer: Peer) -> None:
    call = endpoint.invite(uri(peer), OUR_SDP, from_uri="sip:vendas@empresa.com")
    provisionals = []
    call.on_provisional = provisionals.append
    invite = await peer.expect("INVITE")
    assert peer.last_source == ("127.0.0.1", endpoint.port)  # from the listening socket
    assert invite.sdp == OUR_SDP and invite.from_.tag and invite.to.tag is None
    assert invite.from_.uri.user == "vendas"
    peer.send(peer.response(invite, 100))
    peer.send(peer.response(invite, 180, tag="callee1"))
    await asyncio.sleep(0.05)
    assert call.state == OutgoingCallState.PROCEEDING and len(provisionals) == 1
    ok = peer.response(invite, 200, tag="callee1", body=sdp())
    peer.send(ok)
    ack = await peer.expect("ACK")
    assert ack.uri == f"sip:peer@127.0.0.1:{peer.port}"  # the Contact of the 2xx
    assert ack.cseq == (invite.cseq[0], "ACK")
    assert ack.top_via.branch != invite.top_via.branch
    assert ack.to.tag == "callee1"
    dialog = await asyncio.wait_for(call.wait_answer(), 2)
    assert dialog.state == DialogState.CONFIRMED and dialog.remote_sdp == sdp()
    peer.send(ok)  # a retransmitted 2xx gets the same ACK again
    again = await peer.expect("ACK")
    assert bytes(again) == bytes(ack)
    bye_task = asyncio.create_task(dialog.bye())
    bye = await peer.expect("BYE")
    assert bye.cseq[0] == invite.cseq[0] + 1
    peer.send(peer.response(bye, 200))
    assert (await bye_task).status == 200


async def test_it_retransmits_the_invite_until_a_response(endpoint: SipEndpoint, peer: Peer) -> None:
    call = endpoint.invite(uri(peer), OUR_SDP)
    first = await peer.expect("INVITE")
    second = await peer.expect("INVITE")  # Timer A
    assert bytes(first) == bytes(second)
    peer.send(peer.response(first, 180, tag="t"))
    await peer.silence(0.2)  # Proceeding: no more retransmissions
    call.cancel()
    cancel = await peer.expect("CANCEL")
    peer.send(peer.response(cancel, 200))
    peer.send(peer.response(first, 487, tag="t"))
    await peer.expect("ACK")


async def test_a_rejected_call_is_acked_by_the_transaction(endpoint: SipEndpoint, peer: Peer) -> None:
    call = endpoint.invite(uri(peer), OUR_SDP)
    invite = await peer.expect("INVITE")
    busy = peer.response(invite, 486, tag="busy")
    peer.send(busy)
    ack = await peer.expect("ACK")
    assert ack.top_via.branch == invite.top_via.branch and ack.uri == invite.uri
    assert ack.to.tag == "busy"
    with pytest.raises(CallFailed) as failure:
        await call.wait_answer()
    assert failure.value.status == 486 and call.state == OutgoingCallState.FAILED
    peer.send(busy)  # retransmitted final: ACK again (Timer D)
    assert bytes(await peer.expect("ACK")) == bytes(ack)


async def test_it_answers_a_digest_challenge(endpoint: SipEndpoint, peer: Peer) -> None:
    creds = Credentials("ccbridge", "s3cret")
    call = endpoint.invite(uri(peer), OUR_SDP, credentials=creds)
    assert "s3cret" not in repr(creds)
    invite = await peer.expect("INVITE")
    challenge = 'WWW-Authenticate: Digest realm="asterisk",nonce="abc123",qop="auth",algorithm=MD5\n'
    peer.send(peer.response(invite, 401, tag="auth", extra=challenge))
    await peer.expect("ACK")
    again = await peer.expect("INVITE")
    assert again.call_id == invite.call_id and again.cseq[0] == invite.cseq[0] + 1
    assert again.from_.tag == invite.from_.tag
    auth = again.headers.get("Authorization")
    fields = dict(part.strip().split("=", 1) for part in auth[len("Digest "):].split(","))
    fields = {k: v.strip('"') for k, v in fields.items()}

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5("ccbridge:asterisk:s3cret")
    ha2 = md5(f"INVITE:{again.uri}")
    expected = md5(f"{ha1}:abc123:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
    assert fields["response"] == expected and fields["uri"] == again.uri
    peer.send(peer.response(again, 200, tag="ok", body=sdp()))
    await peer.expect("ACK")
    dialog = await asyncio.wait_for(call.wait_answer(), 2)
    assert dialog.local_seq == again.cseq[0]


async def test_cancel_after_ringing_ends_with_487(endpoint: SipEndpoint, peer: Peer) -> None:
    call = endpoint.invite(uri(peer), OUR_SDP)
    invite = await peer.expect("INVITE")
    peer.send(peer.response(invite, 180, tag="r"))
    await asyncio.sleep(0.05)
    call.cancel()
    call.cancel()  # idempotent
    cancel = await peer.expect("CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.cseq == (invite.cseq[0], "CANCEL") and cancel.to.tag is None
    peer.send(peer.response(cancel, 200))
    peer.send(peer.response(invite, 487, tag="r"))
    await peer.expect("ACK")
    with pytest.raises(CallFailed) as failure:
        await call.wait_answer()
    assert failure.value.status == 487 and call.state == OutgoingCallState.CANCELLED


async def test_cancel_before_any_provisional_waits_for_one(endpoint: SipEndpoint, peer: Peer) -> None:
    call = endpoint.invite(uri(peer), OUR_SDP)
    invite = await peer.expect("INVITE")
    call.cancel()
    await peer.silence(0.1, allow=("INVITE",))  # RFC 3261 §9.1: no CANCEL yet
    peer.send(peer.response(invite, 100))
    cancel = await peer.expect("CANCEL", skip=("INVITE",))
    peer.send(peer.response(cancel, 200))
    peer.send(peer.response(invite, 487, tag="x"))
    await peer.expect("ACK")


async def test_a_200_crossing_our_cancel_is_acked_and_hung_up(
        endpoint: SipEndpoint, peer: Peer) -> None:
    call = endpoint.invite(uri(peer), OUR_SDP)
    invite = await peer.expect("INVITE")
    peer.send(peer.response(invite, 180, tag="c"))
    await asyncio.sleep(0.05)
    call.cancel()
    cancel = await peer.expect("CANCEL")
    peer.send(peer.response(invite, 200, tag="c", body=sdp()))
    peer.send(peer.response(cancel, 200))
    await peer.expect("ACK", skip=("CANCEL",))
    bye = await peer.expect("BYE", skip=("CANCEL",))
    peer.send(peer.response(bye, 200))
    with pytest.raises(CallFailed):
        await call.wait_answer()
    assert call.state == OutgoingCallState.CANCELLED


async def test_no_response_at_all_fails_with_408(endpoint: SipEndpoint, peer: Peer) -> None:
    call = endpoint.invite(uri(peer), OUR_SDP)
    with pytest.raises(CallFailed) as failure:
        await asyncio.wait_for(call.wait_answer(), 5)  # Timer B
    assert failure.value.status == 408


async def test_the_callee_can_reinvite_and_hang_up(endpoint: SipEndpoint, peer: Peer) -> None:
    call = endpoint.invite(uri(peer), OUR_SDP)
    invite = await peer.expect("INVITE")
    peer.send(peer.response(invite, 200, tag="callee", body=sdp()))
    await peer.expect("ACK")
    dialog = await call.wait_answer()
    offers: list[SipRequest] = []
    dialog.on_reinvite = lambda request: (offers.append(request), None)[1]
    # The callee's requests carry our tag in To and theirs in From.
    reinvite = (f"INVITE sip:ccbridge@127.0.0.1:{endpoint.port} SIP/2.0\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};rport;branch=z9hG4bKcallee2\n"
                f"From: <sip:1001@127.0.0.1>;tag=callee\nTo: {invite.headers.get('From')}\n"
                f"Call-ID: {invite.call_id}\nCSeq: 7 INVITE\n"
                f"Contact: <sip:peer@127.0.0.1:{peer.port}>\nContent-Type: application/sdp\n"
                f"Content-Length: {len(sdp('sendonly'))}\n\n{sdp('sendonly')}")
    peer.send(reinvite)
    answer = await peer.expect(200, skip=(100,))
    assert answer.sdp == OUR_SDP and len(offers) == 1  # None: keep the current SDP
    bye = reinvite.replace("INVITE sip", "BYE sip").replace("7 INVITE", "8 BYE").replace(
        "z9hG4bKcallee2", "z9hG4bKcallee3").split("Content-Type")[0] + "Content-Length: 0\n\n"
    peer.send(bye)
    assert (await peer.expect(200, skip=(200,))).cseq == (8, "BYE")
    assert dialog.state == DialogState.TERMINATED


async def test_options_to_a_peer_returns_its_answer(endpoint: SipEndpoint, peer: Peer) -> None:
    task = asyncio.create_task(endpoint.options(uri(peer)))
    options = await peer.expect("OPTIONS")
    peer.send(peer.response(options, 200))
    assert (await task).status == 200
