"""Raw-UDP conformance of the stack as the called side (what Asterisk's trunk leg sees)."""

from __future__ import annotations

import asyncio

from sip import Dialog, DialogState, IncomingCallState, ServerInvite, SipEndpoint
from sip.errors import SipStatusError
from sip.message import SipRequest, SipResponse
from tests.sip.peer import OUR_SDP, Peer, sdp


def answering(endpoint: SipEndpoint, sdp_answer: str = OUR_SDP) -> list[Dialog]:
    """Make the endpoint answer every INVITE at once; collect the dialogs."""
    dialogs: list[Dialog] = []
    endpoint.on_invite = lambda call: dialogs.append(call.answer(sdp_answer))
    return dialogs


async def establish(endpoint: SipEndpoint, peer: Peer) -> tuple[Dialog, SipResponse]:
    dialogs = answering(endpoint)
    peer.send(peer.request("INVITE", body=sdp()))
    ok = await peer.expect(200, skip=(100,))
    peer.send(peer.ack_for(ok))
    await asyncio.wait_for(dialogs[0].confirmed.wait(), 2)
    return dialogs[0], ok


async def test_it_answers_options_with_allow_and_accept(endpoint: SipEndpoint, peer: Peer) -> None:
    peer.send(peer.request("OPTIONS", uri=f"sip:127.0.0.1:{endpoint.port}"))
    ok = await peer.expect(200)
    assert "INVITE" in ok.headers.get("Allow") and "UPDATE" in ok.headers.get("Allow")
    assert ok.headers.get("Accept") == "application/sdp"
    assert ok.to.tag


async def test_it_absorbs_a_retransmitted_invite_and_resends_the_last_response(
        endpoint: SipEndpoint, peer: Peer) -> None:
    calls: list[ServerInvite] = []

    def on_invite(call: ServerInvite) -> None:
        calls.append(call)
        call.send_provisional(180)

    endpoint.on_invite = on_invite
    invite = peer.request("INVITE", body=sdp(), branch="z9hG4bKretrans1")
    peer.send(invite)
    await peer.expect(100)
    ringing = await peer.expect(180)
    peer.send(invite)  # the retransmission
    again = await peer.expect(180)
    # It should be one call, and the resent 180 the same response (same To-tag).
    assert len(calls) == 1
    assert again.to.tag == ringing.to.tag == calls[0].to_tag
    dialog = calls[0].answer(OUR_SDP)
    ok = await peer.expect(200)
    peer.send(invite)  # Accepted absorbs it; only 2xx retransmissions may follow
    peer.send(peer.ack_for(ok))
    await asyncio.wait_for(dialog.confirmed.wait(), 2)
    await peer.silence(0.2, allow=(200,))
    assert len(calls) == 1


async def test_it_retransmits_the_2xx_until_the_ack(endpoint: SipEndpoint, peer: Peer) -> None:
    dialogs = answering(endpoint)
    peer.send(peer.request("INVITE", body=sdp()))
    first = await peer.expect(200, skip=(100,))
    second = await peer.expect(200)
    third = await peer.expect(200)
    assert bytes(first) == bytes(second) == bytes(third)
    assert first.sdp == OUR_SDP
    assert dialogs[0].state == DialogState.ANSWERED
    peer.send(peer.ack_for(first))
    await asyncio.wait_for(dialogs[0].confirmed.wait(), 2)
    assert dialogs[0].state == DialogState.CONFIRMED
    # It should stop retransmitting once the ACK arrived (one may already be in flight).
    assert len(await peer.silence(0.5, allow=(200,))) <= 1


async def test_it_gives_up_on_a_lost_ack_with_bye(endpoint: SipEndpoint, peer: Peer) -> None:
    dialogs = answering(endpoint)
    peer.send(peer.request("INVITE", body=sdp()))
    await peer.expect(200, skip=(100,))
    # 64*T1 of 2xx retransmissions, then the session is ended with BYE (RFC 3261 §13.3.1.4).
    bye = await peer.expect("BYE", within=5, skip=(200,))
    assert peer.last_source == ("127.0.0.1", endpoint.port)
    peer.send(peer.response(bye, 200))
    assert await asyncio.wait_for(dialogs[0].wait_terminated(), 2) == "ack timeout"
    assert bye.uri == f"sip:peer@127.0.0.1:{peer.port}"  # the remote target is the Contact


async def test_it_retransmits_a_lost_bye_until_answered(endpoint: SipEndpoint, peer: Peer) -> None:
    dialog, ok = await establish(endpoint, peer)
    bye_task = asyncio.create_task(dialog.bye())
    first = await peer.expect("BYE", skip=(200,))
    again = await peer.expect("BYE", skip=(200,))  # lost: Timer E resends it
    assert first.top_via.branch == again.top_via.branch
    assert peer.last_source == ("127.0.0.1", endpoint.port)  # from the listening socket
    assert first.to.tag == peer.tag and first.from_.tag == ok.to.tag
    peer.send(peer.response(again, 200))
    response = await asyncio.wait_for(bye_task, 2)
    assert response.status == 200
    assert dialog.state == DialogState.TERMINATED


async def test_a_bye_that_is_never_answered_ends_with_a_local_408(
        endpoint: SipEndpoint, peer: Peer) -> None:
    dialog, _ = await establish(endpoint, peer)
    response = await asyncio.wait_for(dialog.bye(), 5)
    assert response.status == 408  # Timer F
    assert dialog.state == DialogState.TERMINATED


async def test_it_accepts_a_bye_from_the_peer(endpoint: SipEndpoint, peer: Peer) -> None:
    dialog, ok = await establish(endpoint, peer)
    byes: list[SipRequest] = []
    dialog.on_bye = byes.append
    bye = peer.request("BYE", cseq=2, to_tag=ok.to.tag)
    peer.send(bye)
    await peer.expect(200, skip=(200,))
    assert dialog.state == DialogState.TERMINATED and dialog.reason == "remote bye"
    assert len(byes) == 1
    peer.send(bye)  # retransmitted: the non-INVITE transaction answers it again
    resent = await peer.expect(200)
    assert resent.cseq == (2, "BYE")


async def test_a_cancel_before_the_answer_gets_200_and_the_invite_487(
        endpoint: SipEndpoint, peer: Peer) -> None:
    calls: list[ServerInvite] = []
    endpoint.on_invite = lambda call: (calls.append(call), call.send_provisional(180))
    invite = peer.request("INVITE", body=sdp(), branch="z9hG4bKcancel1")
    peer.send(invite)
    await peer.expect(180, skip=(100,))
    peer.send(peer.request("CANCEL", branch="z9hG4bKcancel1"))
    cancel_ok = await peer.expect(200)
    assert cancel_ok.cseq == (1, "CANCEL")
    terminated = await peer.expect(487)
    assert terminated.cseq == (1, "INVITE")
    assert calls[0].cancelled.is_set() and calls[0].state == IncomingCallState.CANCELLED
    # The ACK for the 487 (same branch) stops Timer G.
    peer.send(peer.ack_for(terminated, branch="z9hG4bKcancel1"))
    assert len(await peer.silence(0.4, allow=(487,))) <= 1


async def test_a_cancel_crossing_our_200_loses(endpoint: SipEndpoint, peer: Peer) -> None:
    dialogs = answering(endpoint)
    peer.send(peer.request("INVITE", body=sdp(), branch="z9hG4bKcross1"))
    ok = await peer.expect(200, skip=(100,))
    peer.send(peer.request("CANCEL", branch="z9hG4bKcross1"))
    cancel_ok = await peer.expect(200, skip=())
    while cancel_ok.cseq[1] != "CANCEL":  # 2xx retransmissions may come first
        cancel_ok = await peer.expect(200)
    peer.send(peer.ack_for(ok))
    await asyncio.wait_for(dialogs[0].confirmed.wait(), 2)
    # It should never send 487: the 200 won.
    await peer.silence(0.3, allow=(200,))
    assert dialogs[0].state == DialogState.CONFIRMED


async def test_a_cancel_for_no_transaction_gets_481(endpoint: SipEndpoint, peer: Peer) -> None:
    peer.send(peer.request("CANCEL", branch="z9hG4bKnothing"))
    assert (await peer.expect(481)).cseq == (1, "CANCEL")


async def test_a_reinvite_just_after_the_ack_is_answered_while_the_app_is_busy(
        endpoint: SipEndpoint, peer: Peer) -> None:
    """Asterisk's direct-media re-INVITE comes ~5 ms after our ACK (lab notes)."""
    app_busy = asyncio.Event()
    release = asyncio.Event()
    dialogs: list[Dialog] = []

    async def on_invite(call: ServerInvite) -> None:
        dialog = call.answer(OUR_SDP)
        dialogs.append(dialog)
        await dialog.confirmed.wait()
        app_busy.set()
        await release.wait()  # the app's "answered" handling is still running

    endpoint.on_invite = on_invite
    peer.send(peer.request("INVITE", body=sdp()))
    ok = await peer.expect(200, skip=(100,))
    peer.send(peer.ack_for(ok))
    peer.send(peer.request("INVITE", cseq=2, to_tag=ok.to.tag, body=sdp("sendonly")))
    answer = await peer.expect(200, skip=(100, 200))
    while answer.cseq[0] != 2:
        answer = await peer.expect(200, skip=(100,))
    assert app_busy.is_set() and not release.is_set()
    # The default answer mirrors the direction (RFC 3264) and bumps the version.
    assert "a=recvonly" in answer.sdp and "o=ccbridge 7 2 " in answer.sdp
    peer.send(peer.ack_for(answer))
    release.set()
    assert dialogs[0].remote_sdp == sdp("sendonly")


async def test_a_reinvite_before_the_ack_is_answered_and_both_acks_count(
        endpoint: SipEndpoint, peer: Peer) -> None:
    dialogs = answering(endpoint)
    peer.send(peer.request("INVITE", body=sdp()))
    ok = await peer.expect(200, skip=(100,))
    peer.send(peer.request("INVITE", cseq=2, to_tag=ok.to.tag, body=sdp()))
    answer = await peer.expect(200, skip=(100, 200))
    while answer.cseq[0] != 2:
        answer = await peer.expect(200, skip=(100,))
    assert answer.sdp == OUR_SDP  # nothing changed: same version
    peer.send(peer.ack_for(answer))
    peer.send(peer.ack_for(ok))
    await asyncio.wait_for(dialogs[0].confirmed.wait(), 2)
    assert len(await peer.silence(0.4, allow=(200,))) <= 2
    assert dialogs[0].state == DialogState.CONFIRMED


async def test_the_app_answers_a_reinvite_with_its_own_sdp(endpoint: SipEndpoint, peer: Peer) -> None:
    dialog, ok = await establish(endpoint, peer)
    new_sdp = OUR_SDP.replace("30000", "30002").replace(" 7 1 ", " 7 2 ")

    async def on_reinvite(request: SipRequest) -> str:
        assert request.sdp == sdp("inactive")
        await asyncio.sleep(0.01)
        return new_sdp

    dialog.on_reinvite = on_reinvite
    peer.send(peer.request("INVITE", cseq=2, to_tag=ok.to.tag, body=sdp("inactive")))
    answer = await peer.expect(200, skip=(100,))
    assert answer.sdp == new_sdp and dialog.local_sdp == new_sdp
    peer.send(peer.ack_for(answer))


async def test_the_app_can_reject_a_reinvite(endpoint: SipEndpoint, peer: Peer) -> None:
    dialog, ok = await establish(endpoint, peer)

    def on_reinvite(request: SipRequest) -> str:
        raise SipStatusError(488)

    dialog.on_reinvite = on_reinvite
    branch = "z9hG4bKreject488"
    peer.send(peer.request("INVITE", cseq=2, to_tag=ok.to.tag, body=sdp(), branch=branch))
    rejected = await peer.expect(488, skip=(100,))
    peer.send(peer.ack_for(rejected, branch=branch))
    assert dialog.state == DialogState.CONFIRMED


async def test_an_update_with_sdp_is_answered(endpoint: SipEndpoint, peer: Peer) -> None:
    _dialog, ok = await establish(endpoint, peer)
    peer.send(peer.request("UPDATE", cseq=2, to_tag=ok.to.tag, body=sdp("sendonly")))
    answer = await peer.expect(200)
    assert answer.cseq == (2, "UPDATE") and "a=recvonly" in answer.sdp
    assert answer.contact is not None


async def test_glare_gets_491(endpoint: SipEndpoint, peer: Peer) -> None:
    dialog, ok = await establish(endpoint, peer)
    ours = asyncio.create_task(dialog.reinvite(OUR_SDP))
    our_invite = await peer.expect("INVITE")
    # The peer's own re-INVITE crosses ours.
    branch = "z9hG4bKglare1"
    peer.send(peer.request("INVITE", cseq=2, to_tag=ok.to.tag, body=sdp(), branch=branch))
    pending = await peer.expect(491, skip=(100, "INVITE"))
    peer.send(peer.ack_for(pending, branch=branch))
    peer.send(peer.response(our_invite, 200, body=sdp()))
    ack = await peer.expect("ACK", skip=("INVITE",))
    assert ack.cseq == (our_invite.cseq[0], "ACK")
    assert ack.top_via.branch != our_invite.top_via.branch
    assert await asyncio.wait_for(ours, 2) == sdp()


async def test_our_reinvite_rejected_with_491_raises_and_is_acked(
        endpoint: SipEndpoint, peer: Peer) -> None:
    dialog, _ = await establish(endpoint, peer)
    ours = asyncio.create_task(dialog.reinvite(OUR_SDP))
    invite = await peer.expect("INVITE")
    peer.send(peer.response(invite, 491))
    ack = await peer.expect("ACK", skip=("INVITE",))
    assert ack.top_via.branch == invite.top_via.branch  # the transaction's own ACK
    try:
        await asyncio.wait_for(ours, 2)
    except SipStatusError as exc:
        assert exc.status == 491
    else:
        raise AssertionError("reinvite() should raise on 491")
    assert dialog.state == DialogState.CONFIRMED


async def test_a_request_for_an_unknown_dialog_gets_481(endpoint: SipEndpoint, peer: Peer) -> None:
    peer.send(peer.request("BYE", to_tag="nosuchtag"))
    assert (await peer.expect(481)).cseq == (1, "BYE")
    peer.send(peer.request("INVITE", to_tag="nosuchtag", body=sdp(), call_id="other@x"))
    await peer.expect(481, skip=(100,))
    peer.send(peer.request("UPDATE"))  # no To-tag, but UPDATE only lives in dialogs
    await peer.expect(481)


async def test_an_unknown_method_gets_501(endpoint: SipEndpoint, peer: Peer) -> None:
    peer.send(peer.request("SUBSCRIBE"))
    assert (await peer.expect(501)).cseq == (1, "SUBSCRIBE")


async def test_an_invite_with_no_application_gets_480(endpoint: SipEndpoint, peer: Peer) -> None:
    peer.send(peer.request("INVITE", body=sdp()))
    await peer.expect(480, skip=(100,))


async def test_an_out_of_order_cseq_gets_500(endpoint: SipEndpoint, peer: Peer) -> None:
    _dialog, ok = await establish(endpoint, peer)
    peer.send(peer.request("INFO", cseq=5, to_tag=ok.to.tag))
    await peer.expect(200, skip=(200,))
    peer.send(peer.request("INFO", cseq=4, to_tag=ok.to.tag))
    assert (await peer.expect(500)).cseq == (4, "INFO")


async def test_the_remote_target_follows_the_contact_of_a_reinvite(
        endpoint: SipEndpoint, peer: Peer, peer2: Peer) -> None:
    dialog, ok = await establish(endpoint, peer)
    peer.send(peer.request("INVITE", cseq=2, to_tag=ok.to.tag, body=sdp(),
                           contact_port=peer2.port))
    answer = await peer.expect(200, skip=(100,))
    peer.send(peer.ack_for(answer))
    task = asyncio.create_task(dialog.bye())
    bye = await peer2.expect("BYE")
    assert bye.uri == f"sip:peer@127.0.0.1:{peer2.port}"
    peer2.send(peer2.response(bye, 200), ("127.0.0.1", endpoint.port))
    assert (await asyncio.wait_for(task, 2)).status == 200


async def test_requests_follow_the_record_route(
        endpoint: SipEndpoint, peer: Peer, peer2: Peer) -> None:
    dialogs = answering(endpoint)
    rr = f"Record-Route: <sip:127.0.0.1:{peer2.port};lr>\n"
    peer.send(peer.request("INVITE", body=sdp(), extra=rr))
    ok = await peer.expect(200, skip=(100,))
    assert ok.headers.get("Record-Route") == f"<sip:127.0.0.1:{peer2.port};lr>"
    peer.send(peer.ack_for(ok))
    await asyncio.wait_for(dialogs[0].confirmed.wait(), 2)
    task = asyncio.create_task(dialogs[0].bye())
    bye = await peer2.expect("BYE")  # to the proxy, loose routing
    assert bye.headers.get("Route") == f"<sip:127.0.0.1:{peer2.port};lr>"
    assert bye.uri == f"sip:peer@127.0.0.1:{peer.port}"
    peer2.send(peer2.response(bye, 200), ("127.0.0.1", endpoint.port))
    assert (await asyncio.wait_for(task, 2)).status == 200


async def test_responses_go_to_the_source_with_rport_and_to_the_via_port_without(
        endpoint: SipEndpoint, peer: Peer, peer2: Peer) -> None:
    # rport: back to where it came from, whatever the Via says, with received/rport filled in.
    via = f"SIP/2.0/UDP 127.0.0.1:{peer2.port};rport;branch=z9hG4bKrport1"
    peer.send(peer.request("OPTIONS", via=via))
    ok = await peer.expect(200)
    assert ok.top_via.params["rport"] == str(peer.port)
    assert ok.top_via.params["received"] == "127.0.0.1"
    # No rport: to the Via's sent-by port (RFC 3261 §18.2.2).
    via = f"SIP/2.0/UDP 127.0.0.1:{peer2.port};branch=z9hG4bKnorport1"
    peer.send(peer.request("OPTIONS", via=via))
    assert (await peer2.expect(200)).cseq == (1, "OPTIONS")
