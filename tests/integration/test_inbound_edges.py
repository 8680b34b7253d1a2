"""The inbound call's other endings and in-call features, end to end (see test_inbound_call.py).

Each test drives the real Asterisk lab, a SIPp phone, the bridge's processes and the agent app in
Chromium: a rejection, the ring timeout, the caller giving up, the desk phone answering first,
the phone hanging up, DTMF both ways, and a media worker killed mid-call.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.fixtures.prereq import require
from tests.integration.bridge_stack import (
    AGENT_TONE,
    ANA,
    SEEDED_MAPPING,
    WORKER_PORTS,
    Capture,
    cdr,
    logs,
    set_mapping,
)
from tests.lab.sipp import free_udp_port

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]

DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_5.pcap")  # SIPp's: digit 5 as RFC 4733


@pytest.fixture
async def agent(web_role, launch_agent, bridge):
    """Ana, signed in to the agent app (the bridge is up)."""
    page = await launch_agent(AGENT_TONE)
    await page.open(web_role.url)
    await page.login(ANA[0], ANA[1])
    return page


@pytest.fixture
def mapping(web_role):
    """Change the seeded mapping for one test; restore it after."""
    yield lambda **fields: set_mapping(web_role, **fields)
    set_mapping(web_role, **SEEDED_MAPPING)


def failing_call(sipp, *, trace: bool = True):
    """The phone 1001 calls vendas and expects a final failure (uac_fail.xml)."""
    return sipp.start(
        "uac_fail",
        service="vendas",
        phone="1001",
        variables={"caller": "1001"},
        extra=["-trace_msg"] if trace else [],
        timeout=45,
    )


def final_status(result) -> int:
    """The final response the SIPp phone got to its (authenticated) INVITE."""
    text = "\n".join(p.read_text(errors="replace") for p in result.workdir.glob("*_messages.log"))
    statuses = [int(s) for s in re.findall(r"^SIP/2\.0 ([3-6]\d\d) ", text, re.M) if s not in ("401", "407")]
    return statuses[-1] if statuses else 0


async def phone_done(phone, web_role, bridge, within: float = 20):
    """The SIPp phone's result once it ends; on a failure, what the bridge saw."""
    try:
        result = await asyncio.to_thread(phone.wait, within)
    except Exception as exc:
        result = exc
    if isinstance(result, Exception) or not result.ok:
        detail = result if isinstance(result, Exception) else result.describe()
        pytest.fail(f"{detail}\n--- cdr {cdr(web_role)}\n{logs(bridge)}")
    return result


async def ringing(agent, bridge, lab) -> None:
    try:
        await agent.wait_for("ringing", within=25)
    except AssertionError as exc:
        history = await agent.page.evaluate("() => window.agentApp.history")
        pytest.fail(f"{exc}\nhistory={history}\n{logs(bridge)}\n--- asterisk\n{lab.log_tail(40)}")


async def settled_cdr(web_role, predicate, within: float = 10.0) -> dict:
    """The latest CDR once `predicate(row)` holds (the listener and the edge both write it)."""
    deadline = time.monotonic() + within
    while True:
        row = await asyncio.to_thread(cdr, web_role)
        if predicate(row) or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.5)


async def test_it_ends_the_phone_call_when_the_agent_rejects(
    web_role, asterisk_lab, sipp, bridge, agent, mapping
):
    mapping(agents=[ANA[2]])  # bruno is not signed in: he would ring on until the timeout
    no_desk_phone(sipp)
    phone = failing_call(sipp)
    await ringing(agent, bridge, asterisk_lab)
    await agent.page.click("#reject-button")
    result = await phone_done(phone, web_role, bridge)
    assert final_status(result) in (403, 486, 603), final_status(result)
    row = await settled_cdr(web_role, lambda r: r["state"] == "ended")
    assert row["sip_status"] == 603 and row["reject"] == "rejected by the agents", row
    assert row["disp"] in ("failed", "busy", "no_answer") and row["state"] == "ended", row
    assert "app.rejected" in row["events"], row["events"]


async def test_it_gives_up_with_480_when_no_agent_answers_in_the_ring_timeout(
    web_role, asterisk_lab, sipp, bridge, agent, mapping
):
    mapping(agents=[ANA[2]], ring_timeout=6)
    no_desk_phone(sipp)
    phone = failing_call(sipp)
    await ringing(agent, bridge, asterisk_lab)
    state = await agent.wait_for("ended", "idle", within=15)
    assert state["reason"] == "reasonMissed", state
    await phone_done(phone, web_role, bridge)
    row = await settled_cdr(web_role, lambda r: r["state"] == "ended")
    assert row["sip_status"] == 480 and row["disp"] == "no_answer", row
    assert "ring.timeout" in row["events"], row["events"]


async def test_it_stops_the_app_ringing_when_the_caller_hangs_up(web_role, asterisk_lab, sipp, bridge, agent):
    phone = sipp.call("1001", "vendas", scenario="uac_cancel", hold_ms=2000)
    await ringing(agent, bridge, asterisk_lab)
    state = await agent.wait_for("ended", "idle", within=15)
    assert state["reason"] == "reasonMissed", state
    await phone_done(phone, web_role, bridge)
    row = await settled_cdr(web_role, lambda r: r["state"] == "ended")
    assert row["sip_status"] == 487 and row["reject"] == "the caller hung up while ringing", row
    assert row["disp"] == "no_answer", row
    assert "sip.cancel" in row["events"], row["events"]


async def test_it_stops_the_app_ringing_when_the_desk_phone_answers_first(
    web_role, asterisk_lab, sipp, bridge, agent
):
    desk = sipp.answer_as("vendas", ring_ms=5000)
    try:
        phone = sipp.call("1001", "vendas", hold_ms=1500)
        await ringing(agent, bridge, asterisk_lab)
        state = await agent.wait_for("ended", "idle", within=15)
        assert state["reason"] == "reasonMissed", state
        result = await asyncio.to_thread(phone.wait, 20)
        assert result.ok, result.describe()
        assert (await asyncio.to_thread(desk.wait, 10)).ok
    finally:
        unregister(sipp, desk.port)
    row = await settled_cdr(web_role, lambda r: r["state"] == "ended")
    assert row["sip_status"] == 487 and row["reject"] == "answered elsewhere (Asterisk cancelled)", row
    assert row["disp"] == "answered" and row["agent"] is None, row
    cancel = [p for k, p in row["payloads"] if k == "sip.cancel"]
    assert cancel and "elsewhere" in cancel[0]["reason"].lower(), row["payloads"]
    assert any(leg["channel"].startswith("PJSIP/vendas-") and leg["answered"] for leg in row["legs"]), row


def unregister(sipp, port: int) -> None:
    """Drop the desk phone's contact, else later calls to vendas ring it too."""
    result = sipp.run("unregister", service="vendas", phone="vendas", port=port, timeout=10)
    assert result.ok, result.describe()


def no_desk_phone(sipp) -> None:
    """Make sure no desk phone rings with the bridge: Asterisk keeps registrations across runs
    (astdb), and a stale contact would keep the Dial ringing after the bridge's leg failed. The
    AOR keeps one contact: ours replaces any other, then goes."""
    port = free_udp_port()
    sipp.register("vendas", port)
    unregister(sipp, port)


async def answered_call(agent, bridge, lab, phone) -> None:
    await ringing(agent, bridge, lab)
    await agent.page.click("#accept-button")
    await agent.wait_for("connected", within=25)


async def test_it_ends_the_app_call_when_the_phone_hangs_up(web_role, asterisk_lab, sipp, bridge, agent):
    phone = sipp.call("1001", "vendas", hold_ms=2000)
    await answered_call(agent, bridge, asterisk_lab, phone)
    state = await agent.wait_for("ended", "idle", within=15)
    assert state["reason"] == "reasonHungUpRemote", state
    await phone_done(phone, web_role, bridge)
    row = await settled_cdr(web_role, lambda r: r["state"] == "ended" and "call.end" in r["events"])
    assert (row["agent"], row["disp"]) == (ANA[2], "answered"), row
    assert "sip.bye" in row["events"] and "app.hangup" not in row["events"], row["events"]


async def test_it_relays_dtmf_both_ways(web_role, asterisk_lab, sipp, bridge, agent, tmp_path):
    require(os.path.exists(DTMF_PCAP), f"SIPp's {DTMF_PCAP} (Debian package sip-tester)")  # noqa: ASYNC240
    phone = sipp.call("1001", "vendas", scenario="uac_dtmf", hold_ms=8000)
    capture = Capture(tmp_path / "dtmf.pcap")
    try:
        await _dtmf_both_ways(web_role, bridge, asterisk_lab, agent, phone, capture)
    finally:
        capture.close()


async def _dtmf_both_ways(web_role, bridge, asterisk_lab, agent, phone, capture) -> None:
    await answered_call(agent, bridge, asterisk_lab, phone)
    # Phone -> app: the pcap's 5 arrives as a system message.
    try:
        await agent.page.wait_for_function("window.agentApp.state.dtmfReceived.includes('5')", timeout=15000)
    except Exception:
        pytest.fail(f"no DTMF in the app: {await agent.state()}\n{logs(bridge)}")
    # App -> phone: the keypad's 7 and # go to the phone as RFC 4733.
    await agent.page.click(".key[data-digit='7']")
    await agent.page.click(".key[data-digit='#']")
    await asyncio.sleep(1.5)
    await agent.page.click("#hangup-button")
    await phone_done(phone, web_role, bridge)
    capture.packets()
    events = capture.events()
    worker = range(WORKER_PORTS[0], WORKER_PORTS[1] + 1)
    sent = {payload[0] for src, dst, payload in events if src in worker}  # worker -> phone
    assert {7, 11} <= sent, (sorted(sent), len(events))  # RFC 4733 events: 7, and 11 for #
    row = await settled_cdr(web_role, lambda r: "call.end" in r["events"])
    dtmf = {(k, p["digit"]) for k, p in row["payloads"] if k.startswith("dtmf.")}
    assert {("dtmf.phone", "5"), ("dtmf.app", "7"), ("dtmf.app", "#")} <= dtmf, dtmf


async def test_it_hangs_up_both_sides_when_the_media_worker_dies(web_role, asterisk_lab, sipp, bridge, agent):
    phone = sipp.call("1001", "vendas", hold_ms=60_000)
    await answered_call(agent, bridge, asterisk_lab, phone)
    await asyncio.sleep(1.0)
    killed = time.monotonic()
    os.killpg(bridge["worker"].pid, signal.SIGKILL)
    result = await asyncio.to_thread(phone.wait, 15)
    ended = time.monotonic()
    print(f"\nworker SIGKILL -> the phone's call ended (BYE answered) in {ended - killed:.2f} s")
    assert result.ok, result.describe()
    state = await agent.wait_for("ended", "idle", within=10)
    assert state["reason"] in ("reasonHungUpRemote", "reasonClosed"), state
    row = await settled_cdr(web_role, lambda r: "call.end" in r["events"] and r["state"] == "ended")
    assert "media.worker_lost" in row["events"], row["events"]
    ends = [p["reason"] for k, p in row["payloads"] if k == "call.end"]
    assert "the media worker died" in ends, ends  # the listener writes its own call.end too
    assert row["end_reason"] == "the media worker died", row


async def test_it_holds_resumes_and_transfers_the_phone_from_the_app(
    web_role, asterisk_lab, sipp, bridge, agent
):
    target = sipp.answer_as("1003", ring_ms=200)
    phone = sipp.call("1001", "vendas", hold_ms=8000)
    await answered_call(agent, bridge, asterisk_lab, phone)
    await asyncio.sleep(1.0)  # the direct-media re-INVITE settles
    await agent.page.click("#hold-button")
    row = await settled_cdr(web_role, lambda r: {"sip.hold", "sip.hold_failed"} & set(r["events"]))
    await agent.page.click("#hold-button")
    row = await settled_cdr(web_role, lambda r: {"sip.unhold", "sip.hold_failed"} & set(r["events"]))
    holds = [(k, p["direction"]) for k, p in row["payloads"] if k.startswith("sip.") and "hold" in k]
    assert holds == [("sip.hold", "sendonly"), ("sip.unhold", "sendrecv")], (holds, logs(bridge))
    assert await agent.page.evaluate("() => window.agentApp.transfer('1003')")
    state = await agent.wait_for("ended", "idle", within=15)
    assert state["reason"] == "reasonHungUpRemote", state
    await phone_done(phone, web_role, bridge, within=30)
    assert (await asyncio.to_thread(target.wait, 15)).ok
    row = await settled_cdr(web_role, lambda r: r["state"] == "ended" and "call.end" in r["events"])
    assert "app.transfer" in row["events"] and "action.blind_transfer" in row["events"], row["events"]
    assert any(leg["channel"].startswith("PJSIP/1003-") and leg["answered"] for leg in row["legs"]), row
