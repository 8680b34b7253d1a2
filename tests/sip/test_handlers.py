"""The stack calls up through its handler protocols: a CANCEL's Reason, a dialog's offers, INFOs and end."""

from __future__ import annotations

import asyncio

from sip import ServerInvite, SipEndpoint
from sip.errors import SipStatusError
from sip.message import SipRequest
from tests.sip.peer import OUR_SDP, Peer, sdp
from tests.sip.test_uas import establish


class Recorder:
    def __init__(self) -> None:
        self.cancels: list[str] = []
        self.offers: list[str | None] = []
        self.infos: list[SipRequest] = []
        self.ended: list[str] = []
        self.refuse = False

    def on_cancel(self, reason: str) -> None:
        self.cancels.append(reason)

    async def on_reinvite(self, request: SipRequest) -> str | None:
        self.offers.append(request.sdp)
        if self.refuse:
            raise SipStatusError(488, "Not Acceptable Here")
        return OUR_SDP

    def on_info(self, request: SipRequest) -> None:
        self.infos.append(request)

    def on_terminated(self, reason: str) -> None:
        self.ended.append(reason)


async def test_a_cancel_reaches_the_invite_handler_with_its_reason(endpoint: SipEndpoint, peer: Peer) -> None:
    handler = Recorder()
    calls: list[ServerInvite] = []

    def on_invite(call: ServerInvite) -> None:
        call.handler = handler
        calls.append(call)

    endpoint.on_invite = on_invite
    peer.send(peer.request("INVITE", body=sdp(), branch="z9hG4bKhandler1"))
    await peer.expect(100)
    reason = 'SIP;cause=200;text="Call completed elsewhere"'
    peer.send(peer.request("CANCEL", branch="z9hG4bKhandler1", extra=f"Reason: {reason}\n"))
    await peer.expect(487, skip=(200,))
    await asyncio.sleep(0.05)
    assert handler.cancels == [reason]
    assert calls[0].cancel_reason == reason


async def test_a_dialog_handler_answers_offers_and_hears_infos_and_the_end(endpoint: SipEndpoint, peer: Peer) -> None:
    dialog, ok = await establish(endpoint, peer)
    handler = Recorder()
    dialog.set_handler(handler)
    peer.send(peer.request("INVITE", cseq=2, to_tag=ok.to.tag, body=sdp()))
    answer = await peer.expect(200, skip=(100, 200))
    while answer.cseq != (2, "INVITE"):  # the first 2xx may still be retransmitted
        answer = await peer.expect(200)
    assert answer.sdp == OUR_SDP and handler.offers == [sdp()]
    peer.send(peer.ack_for(answer))
    handler.refuse = True
    peer.send(peer.request("INVITE", cseq=3, to_tag=ok.to.tag, body=sdp()))
    await peer.expect(488, skip=(100, 200))
    peer.send(peer.request("INFO", cseq=4, to_tag=ok.to.tag, extra="Content-Type: application/dtmf-relay\n"))
    await peer.expect(200, skip=(200,))
    peer.send(peer.request("BYE", cseq=5, to_tag=ok.to.tag))
    await asyncio.wait_for(dialog.terminated.wait(), 2)
    await asyncio.sleep(0.05)
    assert [i.method for i in handler.infos] == ["INFO"]
    assert handler.ended == ["remote bye"]
