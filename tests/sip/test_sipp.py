"""SIPp (Debian sip-tester) drives the stack directly over loopback, no Asterisk.

SIPp runs with its own UDP retransmissions on (no -nr). Each scenario is in
tests/sipp/sipstack_*.xml.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from sip import Dialog, DialogState, IncomingCallState, ServerInvite, SipEndpoint
from sip.message import SipRequest
from tests.fixtures.prereq import require
from tests.lab.sipp import Sipp, SippProcess, SippResult, free_udp_port
from tests.sip.peer import OUR_SDP

pytestmark = pytest.mark.integration


@pytest.fixture
def sipp_tool() -> Iterator[None]:
    missing = [b for b in ("sipp", "sox") if shutil.which(b) is None]
    require(not missing, f"{', '.join(missing)} (Debian packages sip-tester, sox)")
    yield


@pytest.fixture
async def stack(sipp_tool: None, endpoint: SipEndpoint) -> AsyncIterator[tuple[SipEndpoint, Sipp]]:
    with Sipp("127.0.0.1", endpoint.port, phone_password="unused") as sipp:
        yield endpoint, sipp


async def finish(process: SippProcess, limit: float = 15.0) -> SippResult:
    result = await asyncio.to_thread(process.wait, limit)
    assert result.ok, result.describe()
    return result


def start(sipp: Sipp, scenario: str, **kwargs: object) -> SippProcess:
    return sipp.start(scenario, service="vendas", extra=["-trace_msg"], timeout=10, **kwargs)


def messages_log(result: SippResult) -> str:
    return "\n".join(p.read_text(errors="replace") for p in result.workdir.glob("*messages.log"))


def ringing_then_answering(endpoint: SipEndpoint, dialogs: list[Dialog]) -> None:
    async def on_invite(call: ServerInvite) -> None:
        call.send_provisional(180)
        await asyncio.sleep(0.05)
        if call.state == IncomingCallState.PROCEEDING:
            dialogs.append(call.answer(OUR_SDP))

    endpoint.on_invite = on_invite


async def test_a_basic_call_from_sipp(stack: tuple[SipEndpoint, Sipp]) -> None:
    endpoint, sipp = stack
    dialogs: list[Dialog] = []
    ringing_then_answering(endpoint, dialogs)
    await finish(start(sipp, "sipstack_call"))
    assert dialogs[0].state == DialogState.TERMINATED and dialogs[0].reason == "remote bye"


async def test_sipp_cancels_while_ringing(stack: tuple[SipEndpoint, Sipp]) -> None:
    endpoint, sipp = stack
    calls: list[ServerInvite] = []
    endpoint.on_invite = lambda call: (calls.append(call), call.send_provisional(180))
    await finish(start(sipp, "sipstack_cancel"))
    assert calls[0].cancelled.is_set()


async def test_the_200_is_resent_until_sipp_acks(stack: tuple[SipEndpoint, Sipp]) -> None:
    endpoint, sipp = stack
    dialogs: list[Dialog] = []
    ringing_then_answering(endpoint, dialogs)
    result = await finish(start(sipp, "sipstack_late_ack"))
    log = messages_log(result)
    received = [block for block in log.split("-----") if "message received" in block]
    oks = [b for b in received if "SIP/2.0 200" in b and "CSeq: 1 INVITE" in b]
    # The stack resent its 200 while SIPp held the ACK back for 400 ms (T1 = 20 ms here).
    assert len(oks) >= 3, log[-3000:]
    assert dialogs[0].reason == "remote bye"


async def test_a_reinvite_right_after_the_ack_and_a_retransmitted_update(
        stack: tuple[SipEndpoint, Sipp]) -> None:
    endpoint, sipp = stack
    dialogs: list[Dialog] = []
    offers: list[SipRequest] = []

    async def on_invite(call: ServerInvite) -> None:
        call.send_provisional(180)
        dialog = call.answer(OUR_SDP)
        dialogs.append(dialog)

        async def on_reinvite(request: SipRequest) -> str | None:
            offers.append(request)
            if request.method == "UPDATE":
                await asyncio.sleep(0.3)  # SIPp resends the UPDATE meanwhile (every 50 ms)
            return dialog.default_answer(request.sdp)

        dialog.on_reinvite = on_reinvite
        await dialog.confirmed.wait()
        await asyncio.sleep(1.0)  # the app is still busy with "answered"

    endpoint.on_invite = on_invite
    result = await finish(start(sipp, "sipstack_reinvite"))
    # One handler call per offer: the retransmitted UPDATEs were absorbed.
    assert [r.method for r in offers] == ["INVITE", "UPDATE"]
    assert messages_log(result).count("UPDATE sip:") >= 2
    assert "a=recvonly" in dialogs[0].local_sdp


async def test_the_stack_hangs_up_on_sipp(stack: tuple[SipEndpoint, Sipp]) -> None:
    endpoint, sipp = stack
    results: list[object] = []

    async def on_invite(call: ServerInvite) -> None:
        call.send_provisional(180)
        dialog = call.answer(OUR_SDP)
        await dialog.confirmed.wait()
        results.append(await dialog.bye())

    endpoint.on_invite = on_invite
    await finish(start(sipp, "sipstack_remote_bye"))
    for _ in range(50):
        if results:
            break
        await asyncio.sleep(0.02)
    assert results[0].status == 200


async def test_the_stack_calls_sipp(stack: tuple[SipEndpoint, Sipp]) -> None:
    endpoint, sipp = stack
    port = free_udp_port()
    process = sipp.start("sipstack_answer", service="1001", port=port, extra=["-trace_msg"],
                         timeout=10)
    await asyncio.sleep(0.3)  # let SIPp bind
    call = endpoint.invite(f"sip:1001@127.0.0.1:{port}", OUR_SDP)
    dialog = await asyncio.wait_for(call.wait_answer(), 5)
    assert "PCMU" in dialog.remote_sdp
    assert await asyncio.wait_for(dialog.wait_terminated(), 5) == "remote bye"
    await finish(process)
