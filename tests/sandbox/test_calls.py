"""Python-to-Python P2P calls through the sandbox (two daphne processes), aiortc on loopback.

Alice sends 440 Hz and Bob 880 Hz; each side checks the other's tone by FFT.
"""

from __future__ import annotations

import asyncio

import pytest

from connectycube.call import CallConfig, P2PCall, P2PCallState
from connectycube.client import ConnectyCubeAccount
from connectycube.config import AppConfig
from connectycube.errors import AuthError
from connectycube.signalling import CallType
from tests.connectycube.tones import ToneTrack, dominant_frequency, record
from tests.sandbox.conftest import APP_ID, AUTH_KEY, DOMAIN, USERS


def app(sandbox, index: int) -> AppConfig:
    return AppConfig(app_id=APP_ID, auth_key=AUTH_KEY, api_url=sandbox.api(index),
                     chat_url=sandbox.chat(index), chat_domain=DOMAIN)


async def account(sandbox, login, index=0, cfg=None, **kw) -> ConnectyCubeAccount:
    acc = ConnectyCubeAccount(
        app(sandbox, index), login, USERS[login][0],
        call_config=cfg or CallConfig(host_addresses=["127.0.0.1"]), **kw)
    await acc.start()
    return acc


@pytest.fixture
async def pair(sandbox):
    """Alice on one daphne, Bob (ringing into a queue) on the other."""
    incoming: asyncio.Queue[P2PCall] = asyncio.Queue()
    bob = await account(sandbox, "bob", 1, on_incoming_call=incoming.put_nowait)
    alice = await account(sandbox, "alice", 0)
    yield alice, bob, incoming
    await alice.close()
    await bob.close()


def future():
    return asyncio.get_running_loop().create_future()


async def test_it_carries_tones_both_ways(pair):
    alice, _bob, incoming = pair
    (out,) = await alice.place_call([1002], CallType.AUDIO, {"callerName": "Alice"},
                                    setup=lambda c: c.pc.addTrack(ToneTrack(440)))
    call = await asyncio.wait_for(incoming.get(), 10)
    assert call.user_info == {"callerName": "Alice"}
    call.pc.addTrack(ToneTrack(880))
    at_alice, at_bob = future(), future()
    out.pc.on("track", lambda t: at_alice.done() or at_alice.set_result(t))
    call.pc.on("track", lambda t: at_bob.done() or at_bob.set_result(t))
    await call.accept()
    heard_by_bob, heard_by_alice = await asyncio.gather(
        record(await asyncio.wait_for(at_bob, 10), 1.0),
        record(await asyncio.wait_for(at_alice, 10), 1.0),
    )
    assert abs(dominant_frequency(heard_by_bob) - 440) < 10
    assert abs(dominant_frequency(heard_by_alice) - 880) < 10
    assert out.state == call.state == P2PCallState.CONNECTED
    hung_up = future()
    out.on("hung_up", lambda uid, info: hung_up.set_result((uid, info)))
    await call.hangup({"reason": "done"})
    assert await asyncio.wait_for(hung_up, 10) == (1002, {"reason": "done"})


async def test_the_caller_can_hang_up_a_connected_call(pair):
    alice, _bob, incoming = pair
    (out,) = await alice.place_call([1002], CallType.AUDIO)
    call = await asyncio.wait_for(incoming.get(), 10)
    connected = future()
    out.on("ice_state", lambda s: s == "completed" and not connected.done()
           and connected.set_result(True))
    await call.accept()
    await asyncio.wait_for(connected, 10)
    await out.hangup()
    assert await asyncio.wait_for(call.wait_closed(), 10) == "hung up by peer"


async def test_it_reports_a_reject(pair):
    alice, _bob, incoming = pair
    (out,) = await alice.place_call([1002], CallType.AUDIO)
    call = await asyncio.wait_for(incoming.get(), 10)
    rejected = future()
    out.on("rejected", lambda uid, info: rejected.set_result((uid, info)))
    await call.reject({"busy": True})
    assert await asyncio.wait_for(rejected, 10) == (1002, {"busy": "true"})


async def test_it_gives_up_when_nobody_answers(sandbox):
    incoming: asyncio.Queue[P2PCall] = asyncio.Queue()
    bob = await account(sandbox, "bob", 1, on_incoming_call=incoming.put_nowait)
    alice = await account(sandbox, "alice", 0, cfg=CallConfig(
        host_addresses=["127.0.0.1"], dialing_interval=0.2, ring_timeout=0.8))
    try:
        (out,) = await alice.place_call([1002], CallType.AUDIO)
        call = await asyncio.wait_for(incoming.get(), 10)
        missed = future()
        out.on("not_answered", lambda: missed.set_result(True))
        assert await asyncio.wait_for(missed, 10)
        # The callee stops ringing because the bridge told it (hangUp), as the SDK would not.
        assert await asyncio.wait_for(call.wait_closed(), 10) == "hung up by peer"
    finally:
        await alice.close()
        await bob.close()


async def test_it_explains_bad_credentials(sandbox):
    acc = ConnectyCubeAccount(app(sandbox, 0), "alice", "not-her-password")
    with pytest.raises(AuthError) as info:
        await acc.start()
    assert str(info.value) == "ConnectyCube refused the login for app 1: Unauthorized"
    assert "not-her-password" not in repr(acc)
