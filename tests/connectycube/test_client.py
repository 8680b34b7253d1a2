"""Tests for connectycube.client and call: two accounts calling through a real server.

Media runs over aiortc on loopback; the tone each side sends is found by FFT on the other side.
"""

from __future__ import annotations

import asyncio

import pytest

from connectycube.call import CallConfig, P2PCall, P2PCallState
from connectycube.client import ConnectyCubeAccount
from connectycube.config import AppConfig
from connectycube.errors import AuthError
from connectycube.signalling import CallType, SignalType, decode_message
from tests.connectycube.server import APP_ID, AUTH_KEY, DOMAIN, CubeServer
from tests.connectycube.tones import ToneTrack, dominant_frequency, record

USERS = {"alice": ("alicepass", 1001), "bob": ("bobpass", 1002)}


@pytest.fixture
async def server():
    srv = CubeServer(USERS)
    await srv.start()
    yield srv
    await srv.stop()


def config(**kw) -> CallConfig:
    return CallConfig(host_addresses=["127.0.0.1"], **kw)


async def account(server, login, **kw) -> ConnectyCubeAccount:
    app = AppConfig(app_id=APP_ID, auth_key=AUTH_KEY, api_url=server.api_url,
                    chat_url=server.chat_url, chat_domain=DOMAIN)
    acc = ConnectyCubeAccount(app, login, USERS[login][0], call_config=kw.pop("cfg", config()),
                              **kw)
    await acc.start()
    return acc


def signals(server, kind: str) -> list:
    out = []
    for frame in server.frames_in:
        try:
            msg = decode_message(frame)
        except ValueError:
            continue
        if msg is not None and msg.signal.signal_type == kind:
            out.append(msg)
    return out


async def test_it_places_an_audio_call_with_tones_both_ways(server):
    received: dict[str, float] = {}
    incoming: asyncio.Queue[P2PCall] = asyncio.Queue()
    bob = await account(server, "bob", on_incoming_call=incoming.put_nowait)
    alice = await account(server, "alice")
    try:
        def alice_setup(call: P2PCall) -> None:
            call.pc.addTrack(ToneTrack(440))

        (out,) = await alice.place_call([1002], CallType.AUDIO, {"callerName": "Alice"},
                                        setup=alice_setup)
        call = await asyncio.wait_for(incoming.get(), 10)
        assert call.user_info == {"callerName": "Alice"}
        assert call.peer_id == 1001 and call.state == P2PCallState.RINGING
        call.pc.addTrack(ToneTrack(880))
        tracks: dict[str, asyncio.Future] = {
            "alice": asyncio.get_running_loop().create_future(),
            "bob": asyncio.get_running_loop().create_future(),
        }
        out.pc.on("track", lambda t: tracks["alice"].done() or tracks["alice"].set_result(t))
        call.pc.on("track", lambda t: tracks["bob"].done() or tracks["bob"].set_result(t))
        accepted = asyncio.get_running_loop().create_future()
        out.on("accepted", accepted.set_result)
        await call.accept({"answeredBy": "bob"})
        assert await asyncio.wait_for(accepted, 10) == 1002
        at_bob = await asyncio.wait_for(tracks["bob"], 10)
        at_alice = await asyncio.wait_for(tracks["alice"], 10)
        received["bob"], received["alice"] = (
            dominant_frequency(s) for s in await asyncio.gather(record(at_bob, 1.0),
                                                                  record(at_alice, 1.0))
        )
        assert abs(received["bob"] - 440) < 10, received
        assert abs(received["alice"] - 880) < 10, received
        assert out.state == call.state == P2PCallState.CONNECTED
        # The offer and answer both advertised trickle, and candidates followed as iceCandidates.
        assert "a=ice-options:trickle" in signals(server, "call")[0].signal.sdp
        assert "a=ice-options:trickle" in signals(server, "accept")[0].signal.sdp
        assert len(signals(server, "iceCandidates")) == 2
        hung_up = asyncio.get_running_loop().create_future()
        call.on("hung_up", lambda uid, info: hung_up.set_result((uid, info)))
        await out.hangup({"reason": "bye"})
        assert await asyncio.wait_for(hung_up, 10) == (1001, {"reason": "bye"})
        await asyncio.wait_for(call.wait_closed(), 10)
        assert not alice.calls and not bob.calls
    finally:
        await alice.close()
        await bob.close()


async def test_it_sends_video_for_a_video_call(server):
    incoming: asyncio.Queue[P2PCall] = asyncio.Queue()
    bob = await account(server, "bob", on_incoming_call=incoming.put_nowait)
    alice = await account(server, "alice")
    try:
        (out,) = await alice.place_call([1002], CallType.VIDEO)
        call = await asyncio.wait_for(incoming.get(), 10)
        kinds = asyncio.Queue()
        call.pc.on("track", lambda t: kinds.put_nowait(t.kind))
        await call.accept()
        got = {await asyncio.wait_for(kinds.get(), 10), await asyncio.wait_for(kinds.get(), 10)}
        assert got == {"audio", "video"}
        assert "m=video" in signals(server, "accept")[0].signal.sdp
        # The callee hangs up this time.
        hung_up = asyncio.get_running_loop().create_future()
        out.on("hung_up", lambda uid, info: hung_up.set_result(uid))
        await call.hangup()
        assert await asyncio.wait_for(hung_up, 10) == 1002
    finally:
        await alice.close()
        await bob.close()


async def test_it_reports_a_rejected_call(server):
    async def reject(call: P2PCall) -> None:
        await call.reject({"busy": True})

    bob = await account(server, "bob", on_incoming_call=reject)
    alice = await account(server, "alice")
    try:
        (out,) = await alice.place_call([1002], CallType.AUDIO)
        rejected = asyncio.get_running_loop().create_future()
        out.on("rejected", lambda uid, info: rejected.set_result((uid, info)))
        assert await asyncio.wait_for(rejected, 10) == (1002, {"busy": "true"})
        assert await out.wait_closed() == "rejected by peer"
    finally:
        await alice.close()
        await bob.close()


async def test_it_gives_up_ringing_and_tells_the_callee(server):
    incoming: asyncio.Queue[P2PCall] = asyncio.Queue()
    bob = await account(server, "bob", on_incoming_call=incoming.put_nowait)
    alice = await account(server, "alice", cfg=config(dialing_interval=0.2, ring_timeout=0.7))
    try:
        (out,) = await alice.place_call([1002], CallType.AUDIO)
        call = await asyncio.wait_for(incoming.get(), 10)
        missed = asyncio.get_running_loop().create_future()
        out.on("not_answered", lambda: missed.set_result(True))
        assert await asyncio.wait_for(missed, 10)
        assert await asyncio.wait_for(call.wait_closed(), 10) == "hung up by peer"
        assert len(signals(server, "call")) >= 2  # re-sent while ringing
        assert signals(server, "hangUp")[-1].signal.user_info == {"reason": "not answered"}
    finally:
        await alice.close()
        await bob.close()


async def test_it_stops_ringing_when_the_caller_hangs_up(server):
    incoming: asyncio.Queue[P2PCall] = asyncio.Queue()
    bob = await account(server, "bob", on_incoming_call=incoming.put_nowait)
    alice = await account(server, "alice")
    try:
        (out,) = await alice.place_call([1002], CallType.AUDIO)
        call = await asyncio.wait_for(incoming.get(), 10)
        await out.hangup()
        assert await asyncio.wait_for(call.wait_closed(), 10) == "hung up by peer"
        with pytest.raises(RuntimeError):
            await call.accept()
    finally:
        await alice.close()
        await bob.close()


async def test_it_rejects_calls_without_a_handler(server):
    bob = await account(server, "bob")
    alice = await account(server, "alice")
    try:
        (out,) = await alice.place_call([1002], CallType.AUDIO)
        assert await asyncio.wait_for(out.wait_closed(), 10) == "rejected by peer"
        assert signals(server, SignalType.REJECT)[0].signal.user_info == {"busy": "true"}
    finally:
        await alice.close()
        await bob.close()


async def test_it_carries_several_calls_per_account(server):
    incoming: asyncio.Queue[P2PCall] = asyncio.Queue()
    bob = await account(server, "bob", on_incoming_call=incoming.put_nowait)
    alice = await account(server, "alice")
    try:
        first = (await alice.place_call([1002], CallType.AUDIO))[0]
        second = (await alice.place_call([1002], CallType.AUDIO))[0]
        calls = {}
        for _ in range(2):
            call = await asyncio.wait_for(incoming.get(), 10)
            calls[call.session_id] = call
        assert set(calls) == {first.session_id, second.session_id}
        connected = [asyncio.get_running_loop().create_future() for _ in range(2)]
        for out, fut in zip((first, second), connected, strict=True):
            out.on("ice_state", lambda s, f=fut: s == "completed" and not f.done()
                   and f.set_result(True))
        for call in calls.values():
            await call.accept()
        await asyncio.wait_for(asyncio.gather(*connected), 20)
        await calls[second.session_id].hangup()
        await asyncio.wait_for(second.wait_closed(), 10)
        assert first.state == P2PCallState.CONNECTED
    finally:
        await alice.close()
        await bob.close()


async def test_it_refuses_bad_credentials(server):
    app = AppConfig(app_id=APP_ID, auth_key=AUTH_KEY, api_url=server.api_url,
                    chat_url=server.chat_url, chat_domain=DOMAIN)
    acc = ConnectyCubeAccount(app, "alice", "nope")
    with pytest.raises(AuthError, match="refused the login for app 1: Unauthorized"):
        await acc.start()
