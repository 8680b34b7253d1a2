"""The Python ConnectyCube client (the bridge's side) and the agent app calling each other.

The Python account is the Vendas department's bridge account of the demo data; media runs over
aiortc on loopback. Python sends a sine the browser's WebAudio analyser must find; the browser's
fake microphone plays a WAV tone that Python must find by FFT.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from connectycube.call import CallConfig, P2PCall, P2PCallState
from connectycube.client import ConnectyCubeAccount
from connectycube.config import AppConfig
from connectycube.errors import AuthError
from connectycube.signalling import CallType
from tests.connectycube.tones import ToneTrack, dominant_frequency, record

pytestmark = [pytest.mark.browser, pytest.mark.integration]

VENDAS = ("vendas", "vendas-demo", 2001)
ANA = ("ana", "ana-demo", 2002)
BROWSER_TONE, PYTHON_TONE = 600.0, 770.0


def sandbox_app(web_role) -> AppConfig:
    return AppConfig(
        app_id=1, auth_key="demo-auth-key", api_url=f"{web_role.url}/cc-sandbox/api",
        chat_url=f"{web_role.ws_url}/cc-sandbox/chat/", chat_domain="localhost",
    )


def call_config(**timers: float) -> CallConfig:
    # aioice skips 127.0.0.1 when it scans interfaces; the client takes the host addresses.
    return CallConfig(host_addresses=["127.0.0.1"], **timers)


@pytest.fixture
async def bridge(web_role) -> AsyncIterator[Callable[..., ConnectyCubeAccount]]:
    """Yield `await bridge(**call_timers)`: the Vendas account online, closed afterwards."""
    accounts: list[ConnectyCubeAccount] = []

    async def start(**timers: float) -> ConnectyCubeAccount:
        incoming: asyncio.Queue[P2PCall] = asyncio.Queue()
        account = ConnectyCubeAccount(
            sandbox_app(web_role), VENDAS[0], VENDAS[1], call_config=call_config(**timers),
            on_incoming_call=incoming.put_nowait,
        )
        account.incoming = incoming  # type: ignore[attr-defined]
        accounts.append(account)
        await account.start()
        return account

    yield start
    for account in accounts:
        await account.close()


async def agent(web_role, launch_agent, query: str = "", locale: str = "en-US"):
    page = await launch_agent(BROWSER_TONE, locale=locale)
    await page.open(web_role.url, query)
    await page.login(ANA[0], ANA[1])
    return page


def dtmf_digit(message: ET.Element, digits: asyncio.Queue[str]) -> None:
    extra = message.find("{jabber:client}extraParams")
    if message.get("type") == "headline" and extra is not None:
        if extra.findtext("{jabber:client}type") == "dtmf":
            digits.put_nowait(extra.findtext("{jabber:client}digit") or "")


async def falls_silent(track, chunk: float = 0.2, limit: float = 15.0) -> bool:
    """Return True once a chunk of received audio is silent (frames queued before don't count)."""
    heard = 0.0
    while heard < limit:
        samples = await record(track, chunk, skip=0)
        if samples.size and float(np.sqrt(np.mean(samples**2))) < 100:
            return True
        heard += chunk
    return False


def first_track(call: P2PCall) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    call.pc.on("track", lambda t: t.kind == "audio" and not future.done() and future.set_result(t))
    return future


def future_event(call: P2PCall, event: str) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    call.on(event, lambda *args: future.done() or future.set_result(args))
    return future


async def test_it_rings_the_agent_and_carries_tones_both_ways(web_role, launch_agent, bridge):
    ana = await agent(web_role, launch_agent, locale="pt-BR")
    vendas = await bridge()

    (call,) = await vendas.place_call(
        [ANA[2]], CallType.AUDIO, {"callerName": "Vendas"},
        setup=lambda c: c.pc.addTrack(ToneTrack(PYTHON_TONE)),
    )
    track = first_track(call)
    await ana.wait_for("ringing")
    assert await ana.page.text_content("#call-title") == "Vendas ligando..."
    assert await ana.page.text_content("#accept-button") == "Atender"
    await ana.page.click("#accept-button")

    await ana.wait_for("connected")
    received = dominant_frequency(await record(await asyncio.wait_for(track, 20), 1.0))
    assert abs(received - BROWSER_TONE) <= 10, received
    assert abs(await ana.remote_frequency(PYTHON_TONE) - PYTHON_TONE) <= 15
    assert call.state == P2PCallState.CONNECTED

    hung_up = future_event(call, "hung_up")
    await ana.page.click("#hangup-button")
    await asyncio.wait_for(hung_up, 10)
    assert await asyncio.wait_for(call.wait_closed(), 10) == "hung up by peer"
    assert (await ana.state())["reason"] == "reasonHungUpLocal"


async def test_it_takes_a_call_from_the_agent_with_tones_both_ways(web_role, launch_agent, bridge):
    ana = await agent(web_role, launch_agent)
    vendas = await bridge()

    await ana.call(VENDAS[2])
    call = await asyncio.wait_for(vendas.incoming.get(), 15)
    # The page knows the department's account by the mapping's display name.
    await ana.wait_for_title("Calling Vendas...")
    assert call.peer_id == ANA[2] and call.user_info.get("callerName") == "Ana Souza"
    call.pc.addTrack(ToneTrack(PYTHON_TONE))
    track = first_track(call)
    await call.accept()

    await ana.wait_for("connected")
    received = dominant_frequency(await record(await asyncio.wait_for(track, 20), 1.0))
    assert abs(received - BROWSER_TONE) <= 10, received
    assert abs(await ana.remote_frequency(PYTHON_TONE) - PYTHON_TONE) <= 15

    # The keypad reaches the caller as system messages (until the bridge plays real DTMF).
    assert vendas.chat is not None
    digits: asyncio.Queue[str] = asyncio.Queue()
    vendas.chat.add_message_handler(lambda message, raw: dtmf_digit(message, digits))
    await ana.page.click(".key[data-digit='5']")
    await ana.page.click(".key[data-digit='#']")
    assert [await asyncio.wait_for(digits.get(), 10) for _ in range(2)] == ["5", "#"]

    # Muted, the agent sends silence.
    await ana.page.click("#mute-button")
    assert (await ana.state())["muted"] is True
    assert await falls_silent(await track)

    await call.hangup({"reason": "bye"})
    assert (await ana.wait_for("ended"))["reason"] == "reasonHungUpRemote"


async def test_it_ends_both_sides_when_the_agent_rejects(web_role, launch_agent, bridge):
    ana = await agent(web_role, launch_agent)
    vendas = await bridge()

    (call,) = await vendas.place_call([ANA[2]], CallType.AUDIO, {"callerName": "Vendas"})
    rejected = future_event(call, "rejected")
    await ana.wait_for("ringing")
    await ana.page.click("#reject-button")

    assert (await asyncio.wait_for(rejected, 10))[0] == ANA[2]
    assert await asyncio.wait_for(call.wait_closed(), 10) == "rejected by peer"
    assert (await ana.state())["reason"] == "reasonRejectedLocal"


async def test_it_ends_both_sides_when_python_rejects(web_role, launch_agent, bridge):
    ana = await agent(web_role, launch_agent)
    vendas = await bridge()

    await ana.call(VENDAS[2])
    call = await asyncio.wait_for(vendas.incoming.get(), 15)
    await call.reject({"busy": True})

    assert (await ana.wait_for("ended"))["reason"] == "reasonRejectedRemote"
    assert call.close_reason == "rejected"


async def test_it_ends_both_sides_when_the_agent_does_not_answer(web_role, launch_agent, bridge):
    ana = await agent(web_role, launch_agent)
    vendas = await bridge(ring_timeout=4)

    (call,) = await vendas.place_call([ANA[2]], CallType.AUDIO, {"callerName": "Vendas"})
    await ana.wait_for("ringing")

    # Python gives up after its ring timeout and tells the agent with hangUp.
    assert await asyncio.wait_for(call.wait_closed(), 20) == "not answered"
    assert (await ana.wait_for("ended"))["reason"] == "reasonMissed"


async def test_it_ends_both_sides_when_python_does_not_answer(web_role, launch_agent, bridge):
    ana = await agent(web_role, launch_agent, "answer_timeout=4")
    vendas = await bridge(ring_timeout=6)

    await ana.call(VENDAS[2])
    call = await asyncio.wait_for(vendas.incoming.get(), 15)

    assert (await ana.wait_for("ended", within=20))["reason"] == "reasonNoAnswer"
    # The SDK tells the callee nothing when it gives up; Python's own ring timer ends it.
    assert await asyncio.wait_for(call.wait_closed(), 20) == "not answered"


async def test_it_ends_the_agent_call_when_python_hangs_up_while_ringing(
    web_role, launch_agent, bridge
):
    ana = await agent(web_role, launch_agent)
    vendas = await bridge()

    (call,) = await vendas.place_call([ANA[2]], CallType.AUDIO, {"callerName": "Vendas"})
    await ana.wait_for("ringing")
    await call.hangup({"reason": "caller left"})

    assert (await ana.wait_for("ended"))["reason"] == "reasonMissed"


async def test_it_refuses_bad_credentials_from_python(web_role):
    account = ConnectyCubeAccount(sandbox_app(web_role), VENDAS[0], "wrong-password")
    with pytest.raises(AuthError) as error:
        await account.start()
    assert error.value.status == 401
    assert "Unauthorized" in str(error.value)
    assert "wrong-password" not in str(error.value) + repr(account)
