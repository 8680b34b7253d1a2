"""Two agent apps (the official SDK in two headless Chromiums) calling each other through the sandbox.

Each browser's fake microphone plays its own tone; each side must hear the other's frequency.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ANA = ("ana", "ana-demo", 2002)
BRUNO = ("bruno", "bruno-demo", 2003)
ANA_TONE, BRUNO_TONE = 600.0, 1000.0


async def two_agents(web_role, launch_agent, query: str = ""):
    ana = await launch_agent(ANA_TONE)
    bruno = await launch_agent(BRUNO_TONE)
    for agent, (login, password, _) in ((ana, ANA), (bruno, BRUNO)):
        await agent.open(web_role.url, query)
        await agent.login(login, password)
    return ana, bruno


async def test_it_completes_an_audio_call_between_two_browsers(web_role, launch_agent):
    ana, bruno = await two_agents(web_role, launch_agent)

    await ana.call(BRUNO[2])
    await ana.wait_for("dialing")
    # The callee's name comes from the REST API (GET /users/v2).
    await ana.wait_for_title("Calling Bruno Lima...")
    ringing = await bruno.wait_for("ringing")
    # The caller's name travels in userInfo.callerName.
    assert ringing["peerName"] == "Ana Souza" and ringing["peerId"] == ANA[2]
    assert await bruno.page.text_content("#call-title") == "Ana Souza calling..."

    await bruno.page.click("#accept-button")
    await ana.wait_for("connected")
    await bruno.wait_for("connected")
    # Each side hears the other's fake-microphone tone, not its own.
    assert abs(await bruno.remote_frequency(ANA_TONE) - ANA_TONE) <= 15
    assert abs(await ana.remote_frequency(BRUNO_TONE) - BRUNO_TONE) <= 15

    await bruno.page.click("#hangup-button")
    assert (await bruno.wait_for("ended"))["reason"] == "reasonHungUpLocal"
    assert (await ana.wait_for("ended"))["reason"] == "reasonHungUpRemote"
    assert await ana.phases() == ["idle", "dialing", "connecting", "connected", "ended"]


async def test_it_ends_both_sides_when_the_callee_rejects(web_role, launch_agent):
    ana, bruno = await two_agents(web_role, launch_agent)

    await ana.call(BRUNO[2])
    await bruno.wait_for("ringing")
    await bruno.page.click("#reject-button")

    assert (await bruno.wait_for("ended"))["reason"] == "reasonRejectedLocal"
    assert (await ana.wait_for("ended"))["reason"] == "reasonRejectedRemote"


async def test_it_ends_both_sides_when_nobody_answers(web_role, launch_agent):
    # Both SDKs ring for 4 s (answerTimeInterval) instead of 60.
    ana, bruno = await two_agents(web_role, launch_agent, "answer_timeout=4")

    await ana.call(BRUNO[2])
    await bruno.wait_for("ringing")

    assert (await ana.wait_for("ended"))["reason"] == "reasonNoAnswer"
    # The SDK tells the callee nothing; its own answer timer ends the ringing.
    assert (await bruno.wait_for("ended"))["reason"] == "reasonMissed"


async def test_it_ends_both_sides_when_the_caller_hangs_up_while_ringing(web_role, launch_agent):
    ana, bruno = await two_agents(web_role, launch_agent)

    await ana.call(BRUNO[2])
    await bruno.wait_for("ringing")
    await ana.page.click("#hangup-button")

    assert (await ana.wait_for("ended"))["reason"] == "reasonHungUpLocal"
    assert (await bruno.wait_for("ended"))["reason"] == "reasonMissed"
