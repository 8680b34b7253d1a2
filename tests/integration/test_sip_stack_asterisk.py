"""The sip stack as the ccbridge trunk of the real Asterisk 22 lab (interop, not the edge).

A SIPp phone (1001) dials ``vendas``; Asterisk rings PJSIP/vendas@ccbridge,
which is a minimal UA on our stack listening on the lab's bridge port. It
answers with a dummy SDP, must survive Asterisk's direct-media re-INVITE, and
the call must end cleanly from either side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sip import Dialog, ServerInvite, SipEndpoint, Timers, audio_offer
from sip.message import SipRequest
from tests.lab.asterisk import AsteriskLab
from tests.lab.sipp import Sipp, free_udp_port

pytestmark = pytest.mark.asterisk


class TrunkUa:
    """Answer every call on the trunk; record what happens to it."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.calls: list[ServerInvite] = []
        self.offers: list[SipRequest] = []
        self.dialog: asyncio.Future[Dialog] = asyncio.get_running_loop().create_future()
        endpoint.on_invite = self.on_invite

    async def on_invite(self, call: ServerInvite) -> None:
        self.calls.append(call)
        call.send_provisional(180)
        await asyncio.sleep(0.2)
        sdp = str(audio_offer("127.0.0.1", free_udp_port(), codecs=((0, "PCMU", 8000),)))
        dialog = call.answer(sdp)
        dialog.on_reinvite = self.on_reinvite
        self.dialog.set_result(dialog)
        await dialog.confirmed.wait()
        await asyncio.sleep(0.5)  # "answered" handling still running when the re-INVITE lands

    def on_reinvite(self, request: SipRequest) -> str | None:
        self.offers.append(request)
        dialog = self.dialog.result()
        return dialog.default_answer(request.sdp)


@pytest.fixture
async def trunk_ua(asterisk_lab: AsteriskLab) -> AsyncIterator[TrunkUa]:
    endpoint = SipEndpoint("127.0.0.1", asterisk_lab.ports.bridge, timers=Timers(t1=0.1, d=1.0))
    await endpoint.start()
    try:
        yield TrunkUa(endpoint)
    finally:
        await endpoint.close()


async def test_asterisk_reaches_the_stack_and_the_phone_hangs_up(
        asterisk_lab: AsteriskLab, sipp: Sipp, trunk_ua: TrunkUa) -> None:
    phone = sipp.call("1001", "vendas", hold_ms=2500)
    dialog = await asyncio.wait_for(trunk_ua.dialog, 15)
    assert "PCMU" in trunk_ua.calls[0].offer
    reason = await asyncio.wait_for(dialog.wait_terminated(), 15)
    result = await asyncio.to_thread(phone.wait, 15)
    assert result.ok, result.describe()
    assert reason == "remote bye"
    # Direct media: Asterisk re-INVITEd our leg right after the ACK, and we answered it.
    assert trunk_ua.offers and trunk_ua.offers[0].method == "INVITE"


async def test_the_stack_hangs_up_and_asterisk_ends_the_phone_leg(
        asterisk_lab: AsteriskLab, sipp: Sipp, trunk_ua: TrunkUa) -> None:
    phone = sipp.call("1001", "vendas", hold_ms=20000)
    dialog = await asyncio.wait_for(trunk_ua.dialog, 15)
    await asyncio.wait_for(dialog.confirmed.wait(), 5)
    await asyncio.sleep(1.5)  # past the direct-media re-INVITE
    response = await asyncio.wait_for(dialog.bye(), 10)
    assert response.status == 200
    result = await asyncio.to_thread(phone.wait, 15)
    assert result.ok, result.describe()  # the phone got Asterisk's BYE and answered it
    assert trunk_ua.offers


async def test_asterisk_qualifies_the_trunk_with_options(
        asterisk_lab: AsteriskLab, trunk_ua: TrunkUa) -> None:
    for _ in range(60):
        contacts = asterisk_lab.rx("pjsip show contacts")
        if "ccbridge" in contacts and "Avail" in contacts:
            break
        await asyncio.sleep(0.5)
    assert "Avail" in contacts, contacts
