"""A phone calls `vendas` on the real Asterisk 22 and talks to an agent in the ConnectyCube app.

Every part is real and runs as its own process, as in production: Asterisk (lab chroot), a SIPp
phone, the web role (daphne, serving the sandbox and the agent app), the SIP edge (runedge), a
media worker (Celery, queue media), the AMI listener (runami), and the official ConnectyCube SDK
in Chromium. Tones are checked by frequency at both ends; the phone's RTP is captured on the wire
to show that media flows phone <-> worker, without Asterisk, after the direct-media re-INVITE.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from media.rtp import g711
from tests.integration.bridge_stack import (
    AGENT_TONE,
    ANA,
    PHONE_TONE,
    WORKER_PORTS,
    Capture,
    cdr,
    dominant,
    logs,
)

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]


async def test_a_phone_talks_to_an_agent_through_asterisk_and_the_bridge(
    web_role, launch_agent, asterisk_lab, sipp, bridge, tmp_path
):
    agent = await launch_agent(AGENT_TONE, locale="pt-BR")
    await agent.open(web_role.url)
    await agent.login(ANA[0], ANA[1])
    await asyncio.sleep(1.0)  # runami and the edge are up (runedge logs in on the first call)

    phone = sipp.call("1001", "vendas", hold_ms=60_000)
    capture = Capture(tmp_path / "worker.pcap")
    try:
        await agent.wait_for("ringing", within=25)
    except AssertionError as exc:
        pytest.fail(f"{exc}\n{logs(bridge)}\n--- asterisk\n{asterisk_lab.log_tail(40)}")
    assert await agent.page.text_content("#call-title") == "Vendas ligando..."
    await agent.page.click("#accept-button")
    await agent.wait_for("connected", within=25)

    heard = await agent.remote_frequency(PHONE_TONE)
    await asyncio.sleep(3.0)  # direct media settles; the phone hears the agent meanwhile

    await agent.page.click("#hangup-button")
    result = await asyncio.to_thread(phone.wait, 20)
    assert result.ok, result.describe()

    # On the wire, at the end of the call: the worker and the phone send to each other, and
    # Asterisk's RTP ports are out of the path; the phone hears the agent's tone.
    packets = capture.packets()
    asterisk = range(asterisk_lab.ports.rtp_start, asterisk_lab.ports.rtp_end + 1)
    is_worker = range(WORKER_PORTS[0], WORKER_PORTS[1] + 1)
    tail = packets[-100:]
    to_phone = [payload for src, dst, payload in tail if src in is_worker]
    from_phone = [(src, dst) for src, dst, _ in tail if dst in is_worker]
    print(
        f"\nlast 100 RTP packets: {len(to_phone)} worker->phone, {len(from_phone)} phone->worker, "
        f"peers {sorted({dst for src, dst, _ in tail if src in is_worker} | {s for s, _ in from_phone})}"
    )
    assert abs(heard - PHONE_TONE) <= 15, (heard, logs(bridge))
    assert to_phone and from_phone
    assert not any(port in asterisk for src, dst, _ in tail for port in (src, dst)), (
        "Asterisk is still in the media path"
    )
    pcm = np.concatenate([g711.decode("PCMU", p) for p in to_phone])
    assert abs(dominant(pcm) - AGENT_TONE) <= 15

    # One CDR row with both legs.
    await asyncio.sleep(1.5)
    row = cdr(web_role)
    assert row["linkedid"] and row["sip"] and row["cc"], row
    assert (row["agent"], row["disp"], row["state"]) == (ANA[2], "answered", "ended"), row
    assert row["app_codec"] == "PCMU" and row["sip_codec"] == "PCMU" and row["enc"] is True, row
    for kind in ("sip.invite", "sip.180", "app.accepted", "sip.200", "app.hangup", "call.end"):
        assert kind in row["events"], row["events"]
