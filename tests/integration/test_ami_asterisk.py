"""The AMI client against the real Asterisk 22 lab, with SIPp phones."""

from __future__ import annotations

import asyncio
import logging

import pytest
from panoramisk import Manager

from calls.ami import AmiClient, AmiTimeout, ChannelGone, OriginateReason
from sip.endpoint import SipEndpoint
from tests.fixtures.lab import wait_trunk_available
from tests.lab.asterisk import AsteriskLab
from tests.lab.eventlog import EventLog
from tests.lab.sipp import Sipp, SippProcess, free_tcp_port
from tests.lab.tcp_proxy import TcpProxy

pytestmark = pytest.mark.asterisk

# Longer than any event wait (10 s), shorter than SIPp's own 30 s timeout: a caller still
# holding proves that what ended the other leg was the action under test.
HOLD_MS = 25_000


async def _answer_as(sipp: Sipp, phone: str, **kwargs: object) -> SippProcess:
    return await asyncio.to_thread(sipp.answer_as, phone, **kwargs)  # type: ignore[arg-type]


async def _finish(proc: SippProcess, within: float = 20.0) -> None:
    result = await asyncio.to_thread(proc.wait, within)
    assert result.ok, result.describe()


async def _live_call(
    sipp: Sipp, ami: AmiClient, events: EventLog, hold_ms: int = 15000
) -> tuple[SippProcess, SippProcess, str, str]:
    """Start 1001 -> 1002 and return (uac, uas, caller channel, callee channel)."""
    uas = await _answer_as(sipp, "1002", ring_ms=100)
    uac = sipp.call("1001", "1002", hold_ms=hold_ms)
    await events.wait_name("BridgeEnter", Channel="PJSIP/1001-")
    await events.wait_name("BridgeEnter", Channel="PJSIP/1002-")
    channels = {c["Channel"].split("-")[0]: c["Channel"] for c in await ami.core_show_channels()}
    return uac, uas, channels["PJSIP/1001"], channels["PJSIP/1002"]


async def test_it_logs_in_and_sees_fully_booted(ami: AmiClient, ami_events: EventLog) -> None:
    # Asterisk sends FullyBooted to each session right after login.
    await ami_events.wait_name("FullyBooted")
    assert ami.connected
    latency = await ami.ping()  # raises AmiTimeout unless Asterisk answers
    assert ami.latency_ms == latency  # remembered for the health page


async def test_it_lists_no_channels_when_idle(ami: AmiClient) -> None:
    assert await ami.core_show_channels() == []


async def test_it_reports_a_sipp_call_through_asterisk(
    ami: AmiClient, ami_events: EventLog, sipp: Sipp
) -> None:
    uas = await _answer_as(sipp, "1002", ring_ms=200)
    uac = sipp.call("1001", "1002", hold_ms=1500)
    await ami_events.wait_name("BridgeEnter", Channel="PJSIP/1002-")
    channels = await ami.core_show_channels()
    assert sorted(c["Channel"].split("-")[0] for c in channels) == ["PJSIP/1001", "PJSIP/1002"]
    # Both SIPp legs survive Asterisk's direct-media re-INVITEs and end cleanly.
    await _finish(uac)
    await _finish(uas)
    await ami_events.wait_name("Hangup", Channel="PJSIP/1002-")
    names = set(ami_events.names())
    assert {"Newchannel", "DialBegin", "DialEnd", "BridgeEnter", "Hangup"} <= names


async def test_it_returns_the_originate_response_and_keeps_the_link(
    ami: AmiClient, ami_events: EventLog
) -> None:
    result = await ami.originate("Local/wait@from-phones", "wait", "from-phones", timeout=5)
    assert result.success
    assert result.reason is OriginateReason.ANSWERED
    assert result.channel.startswith("Local/wait@from-phones-")
    # It is forwarded to on_event too, and the connection is still usable.
    await ami_events.wait_name("OriginateResponse")
    assert ami.connected and ami.connect_count == 1
    await ami.hangup(result.channel)


async def test_it_reports_a_failed_originate(ami: AmiClient) -> None:
    # 1004 is not registered: Asterisk fails the call at once.
    result = await ami.originate("PJSIP/1004", "wait", "from-phones", timeout=3)
    assert not result.success
    assert result.reason is OriginateReason.FAILED
    assert ami.connected


async def test_raw_panoramisk_originate_without_async_drops_the_link(
    asterisk_lab: AsteriskLab,
) -> None:
    # The problem the adapter exists for: panoramisk reads action['async'].
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    lost = asyncio.Event()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))
    manager = Manager(
        host=asterisk_lab.host, port=asterisk_lab.ports.ami, username=asterisk_lab.ami_username,
        secret=asterisk_lab.ami_secret, loop=loop, reconnect_timeout=3600,
        on_disconnect=lambda *_: lost.set(),
    )
    try:
        await manager.connect()
        await asyncio.wait_for(manager.authenticated_future, 5)
        manager.send_action({
            "Action": "Originate", "Channel": "Local/wait@from-phones",
            "Exten": "wait", "Context": "from-phones", "Priority": "1",
        })
        await asyncio.wait_for(lost.wait(), 10)
    finally:
        manager.close()
        loop.set_exception_handler(None)
    assert any(isinstance(e, KeyError) and e.args == ("async",) for e in errors), errors
    await asyncio.to_thread(asterisk_lab.rx, "channel request hangup all")


async def test_it_hangs_up_a_live_call(ami: AmiClient, ami_events: EventLog, sipp: Sipp) -> None:
    uac, uas, caller, _ = await _live_call(sipp, ami, ami_events)
    await ami.hangup(caller)
    hangup = await ami_events.wait_name("Hangup", Channel=caller)
    assert hangup["Cause"] == "16"
    # The caller's SIPp takes the BYE on its peer_bye branch; the callee gets BYE too.
    await _finish(uac)
    await _finish(uas)


async def test_it_redirects_a_live_call(ami: AmiClient, ami_events: EventLog, sipp: Sipp) -> None:
    uac, uas, caller, callee = await _live_call(sipp, ami, ami_events, hold_ms=HOLD_MS)
    await ami.redirect(caller, "wait", "from-phones")
    # The caller leaves the bridge for the "wait" extension; the callee is hung up.
    await ami_events.wait_name("Newexten", Channel=caller, Exten="wait")
    await ami_events.wait_name("Hangup", Channel=callee)
    # Hung up by the redirect, not by the caller's hold running out and its BYE.
    assert uac.running
    await _finish(uas)
    await ami.hangup(caller)
    await _finish(uac)


async def test_it_blind_transfers_with_redirect_fallback(
    ami: AmiClient, ami_events: EventLog, sipp: Sipp
) -> None:
    uac, uas, caller, callee = await _live_call(sipp, ami, ami_events, hold_ms=HOLD_MS)
    how = await ami.blind_transfer(callee, "wait", "from-phones")
    assert how in ("BlindTransfer", "Redirect")
    # The transferred party (the caller) ends up in "wait"; the transferer is hung up.
    await ami_events.wait_name("Newexten", Channel=caller, Exten="wait")
    await ami_events.wait_name("Hangup", Channel=callee)
    assert uac.running  # not ended by its own hold running out
    await _finish(uas)
    await ami.hangup(caller)
    await _finish(uac)


async def test_it_bridges_two_live_calls(
    ami: AmiClient, ami_events: EventLog, sipp: Sipp
) -> None:
    first = sipp.call("1001", "wait", hold_ms=15000)
    second = sipp.call("1003", "wait", hold_ms=15000)
    await ami_events.wait_name("Newexten", Channel="PJSIP/1001-", Application="Wait")
    await ami_events.wait_name("Newexten", Channel="PJSIP/1003-", Application="Wait")
    channels = {c["Channel"].split("-")[0]: c["Channel"] for c in await ami.core_show_channels()}
    await ami.bridge(channels["PJSIP/1001"], channels["PJSIP/1003"])
    enter = await ami_events.wait_name("BridgeEnter", Channel="PJSIP/1003-")
    other = await ami_events.wait_name("BridgeEnter", Channel="PJSIP/1001-")
    assert enter["BridgeUniqueid"] == other["BridgeUniqueid"]
    await ami.hangup(channels["PJSIP/1001"])
    await _finish(first)
    await _finish(second)


async def test_it_says_channel_gone_for_a_bad_channel(ami: AmiClient) -> None:
    with pytest.raises(ChannelGone, match="channel gone"):
        await ami.hangup("PJSIP/1001-deadbeef")
    with pytest.raises(ChannelGone):
        await ami.redirect("PJSIP/1001-deadbeef", "wait", "from-phones")
    with pytest.raises(ChannelGone):
        await ami.bridge("PJSIP/1001-deadbeef", "PJSIP/1002-deadbeef")
    assert ami.connected


async def test_it_reconnects_when_the_link_hangs_or_is_cut(asterisk_lab: AsteriskLab) -> None:
    reasons: list[str] = []
    connects = asyncio.Queue[None]()
    async with TcpProxy(asterisk_lab.host, asterisk_lab.ports.ami, free_tcp_port()) as proxy:
        client = AmiClient(
            proxy.host, proxy.port, asterisk_lab.ami_username, asterisk_lab.ami_secret,
            ping_interval=0.3, ping_timeout=0.5, reconnect_min=0.1,
            on_connect=lambda: connects.put_nowait(None), on_disconnect=reasons.append,
        )
        await client.start()
        try:
            await asyncio.wait_for(connects.get(), 10)
            proxy.freeze()  # the TCP link stays up but nothing passes
            await asyncio.wait_for(connects.get(), 10)
            assert "Ping" in reasons[0]
            proxy.cut()  # the link drops
            await asyncio.wait_for(connects.get(), 10)
            assert reasons[1] == "connection closed by peer"
            await client.ping()  # raises AmiTimeout unless the third link answers
            assert client.connect_count == 3
        finally:
            await client.stop()


async def test_it_reconnects_after_asterisk_restarts(asterisk_lab: AsteriskLab) -> None:
    connects = asyncio.Queue[None]()
    client = AmiClient(
        asterisk_lab.host, asterisk_lab.ports.ami, asterisk_lab.ami_username,
        asterisk_lab.ami_secret, ping_interval=0.5, ping_timeout=1.0, reconnect_min=0.2,
        reconnect_max=1.0, on_connect=lambda: connects.put_nowait(None),
    )
    await client.start()
    try:
        await asyncio.wait_for(connects.get(), 10)
        await asyncio.to_thread(asterisk_lab.restart)
        await asyncio.wait_for(connects.get(), 30)
        await client.ping()  # raises AmiTimeout unless the restarted Asterisk answers
        assert client.connected and client.connect_count == 2
    finally:
        await client.stop()


async def test_it_names_host_and_user_when_login_fails_and_hides_secret(
    asterisk_lab: AsteriskLab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad_secret = "wrong-" + asterisk_lab.ami_secret
    client = AmiClient(asterisk_lab.host, asterisk_lab.ports.ami, "ccbridge", bad_secret,
                       reconnect_min=5)
    await client.start()
    try:
        with pytest.raises(AmiTimeout, match="refused"):
            await client.wait_connected(3)
    finally:
        await client.stop()
    assert f"{asterisk_lab.host}:{asterisk_lab.ports.ami}" in (client.last_error or "")
    assert "'ccbridge'" in (client.last_error or "")
    assert bad_secret not in caplog.text
    assert bad_secret not in repr(client)


async def test_it_never_logs_the_secret(
    asterisk_lab: AsteriskLab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = AmiClient(asterisk_lab.host, asterisk_lab.ports.ami, asterisk_lab.ami_username,
                       asterisk_lab.ami_secret)
    await client.start()
    try:
        await client.wait_connected(10)
        await client.core_show_channels()
    finally:
        await client.stop()
    assert "Login" in caplog.text or "connected" in caplog.text
    assert asterisk_lab.ami_secret not in caplog.text


async def test_it_sees_the_bridge_call_user_event_for_vendas(
    ami: AmiClient, ami_events: EventLog, sipp: Sipp, asterisk_lab: AsteriskLab
) -> None:
    # The dialplan announces bridge calls before ringing the desk phone and the trunk. Asterisk
    # dials the trunk only while its qualify finds something there: a bare SIP endpoint (it
    # answers OPTIONS, refuses calls with 480) stands in for the edge.
    trunk = SipEndpoint("127.0.0.1", asterisk_lab.ports.bridge)
    await trunk.start()
    assert await asyncio.to_thread(wait_trunk_available, asterisk_lab)
    desk = await _answer_as(sipp, "vendas", ring_ms=100)
    caller = sipp.call("1001", "vendas", hold_ms=500)
    event = await ami_events.wait_name("UserEvent", UserEvent="BridgeCall")
    assert event["SipUri"] == "sip:vendas@empresa.com"
    assert event["Channel"].startswith("PJSIP/1001-")
    await ami_events.wait_name("DialBegin", DestChannel="PJSIP/ccbridge-")
    await _finish(caller)
    await _finish(desk)
    await trunk.close()
