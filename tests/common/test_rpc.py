"""common.rpc: requests and replies validated on the way in, matched by id, bounded in time."""

import asyncio
import json
import time

import pytest

from common import rpc
from common.redisconn import async_redis, sync_redis
from sip.sdp import NoCommonCodec

# --- encoding and validation --------------------------------------------------------------------


def test_a_request_survives_the_round_trip() -> None:
    request = rpc.Request("hangup", {"channel": "PJSIP/1001-00000001"}, deadline=1234.5)
    decoded = rpc.decode_request(request.encode())
    assert decoded == request
    assert json.loads(request.encode()) == {
        "id": request.id, "op": "hangup", "args": {"channel": "PJSIP/1001-00000001"}, "deadline": 1234.5
    }


def test_a_request_without_deadline_or_args_decodes() -> None:
    request = rpc.decode_request(b'{"id": "a1", "op": "stats"}')
    assert request == rpc.Request("stats", {}, "a1", None)
    assert "deadline" not in json.loads(request.encode())
    assert not request.expired()


def test_a_request_expires_after_its_deadline() -> None:
    request = rpc.Request("status", deadline=100.0)
    assert request.expired(now=100.5)
    assert not request.expired(now=99.0)


def test_replies_survive_the_round_trip() -> None:
    ok = rpc.Reply.success("a1", {"sdp": "v=0"})
    failed = rpc.Reply.failure("a2", "channel gone")
    assert rpc.decode_reply(ok.encode()) == ok
    assert rpc.decode_reply(failed.encode()) == failed
    assert json.loads(failed.encode()) == {"re": "a2", "ok": False, "error": "channel gone"}
    assert json.loads(ok.encode()) == {"re": "a1", "ok": True, "result": {"sdp": "v=0"}}
    coded = rpc.Reply.failure("a3", "NoCommonCodec: none", "not_acceptable")
    assert rpc.decode_reply(coded.encode()) == coded and coded.code == "not_acceptable"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"a string"',
        b'{"op": "stats"}',  # no id
        b'{"id": "", "op": "stats"}',
        b'{"id": 7, "op": "stats"}',
        b'{"id": "a1"}',  # no op
        b'{"id": "a1", "op": ["stats"]}',
        b'{"id": "a1", "op": "stats", "args": [1]}',
        b'{"id": "a1", "op": "stats", "args": "x"}',
        b'{"id": "a1", "op": "stats", "deadline": "soon"}',
        b'{"id": "a1", "op": "stats", "deadline": true}',
        b'{"id": "a1", "op": "stats", "deadline": Infinity}',
    ],
)
def test_it_rejects_a_malformed_request(raw: bytes) -> None:
    with pytest.raises(rpc.Malformed):
        rpc.decode_request(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"null",
        b'{"ok": true}',  # no re
        b'{"re": "a1"}',  # no ok
        b'{"re": "a1", "ok": "yes"}',
        b'{"re": "a1", "ok": 1}',
        b'{"re": ["a1"], "ok": true}',
        b'{"re": "a1", "ok": false, "error": {"why": "x"}}',
    ],
)
def test_it_rejects_a_malformed_reply(raw: bytes) -> None:
    with pytest.raises(rpc.Malformed):
        rpc.decode_reply(raw)


# --- PendingReplies -----------------------------------------------------------------------------


async def test_pending_replies_match_by_id() -> None:
    pending = rpc.PendingReplies()
    sent: list[str] = []

    async def send(message: str) -> None:
        sent.append(message)
        request = rpc.decode_request(message)
        # A stray reply first: nobody waits for it, so it is refused.
        assert not pending.resolve(rpc.Reply.success("someone-else", 1))
        assert pending.resolve(rpc.Reply.success(request.id, {"n": request.args["n"] + 1}))

    reply = await pending.call(rpc.Request("inc", {"n": 1}), send, timeout=1)
    assert reply.ok and reply.result == {"n": 2}
    assert len(sent) == 1 and len(pending) == 0


async def test_pending_replies_time_out_and_forget_the_request() -> None:
    pending = rpc.PendingReplies()
    request = rpc.Request("stats")

    async def send(message: str) -> None:
        pass

    started = time.monotonic()
    with pytest.raises(rpc.RpcTimeout, match="stats"):
        await pending.call(request, send, timeout=0.1)
    assert time.monotonic() - started < 1
    assert len(pending) == 0
    assert not pending.resolve(rpc.Reply.success(request.id, {}))  # too late: dropped


async def test_pending_replies_fail_all_when_the_other_end_is_gone() -> None:
    pending = rpc.PendingReplies()

    async def send(message: str) -> None:
        asyncio.get_running_loop().call_soon(pending.fail_all, ConnectionError("gone"))

    with pytest.raises(ConnectionError, match="gone"):
        await pending.call(rpc.Request("stats"), send, timeout=1)


# --- over the real Redis ------------------------------------------------------------------------


async def serve_one(redis_url: str, key: str, reply_key_of: str = "{key}:reply:{id}") -> rpc.Request | None:
    """Answer the next well-formed request on `key` with its args doubled; skip malformed ones."""
    r = async_redis(redis_url)
    while True:
        item = await r.blpop([key], timeout=1)
        if item is None:
            continue
        try:
            request = rpc.decode_request(item[1])
        except rpc.Malformed:
            continue
        reply = rpc.Reply.success(request.id, {k: v * 2 for k, v in request.args.items()})
        await rpc.push(r, reply_key_of.format(key=key, id=request.id), reply.encode(), 60)
        return request


async def test_a_call_gets_its_reply_over_redis(redis_url: str, key: str) -> None:
    r = sync_redis(redis_url)
    r.rpush(key, b"garbage", b'{"id": 1}')  # malformed requests ahead: the server skips them
    server = asyncio.create_task(serve_one(redis_url, key))
    request = rpc.Request("double", {"x": 21}, deadline=time.time() + 5)
    reply = await asyncio.to_thread(rpc.call, r, key, request, f"{key}:reply:{request.id}", timeout=5, ttl=60)
    assert reply == rpc.Reply.success(request.id, {"x": 42})
    assert (await server) == request
    assert not r.exists(f"{key}:reply:{request.id}")  # taken by the requester
    r.delete(key)


def test_a_call_without_a_server_times_out(redis_url: str, key: str) -> None:
    r = sync_redis(redis_url)
    request = rpc.Request("status")
    started = time.monotonic()
    with pytest.raises(rpc.RpcTimeout):
        rpc.call(r, key, request, f"{key}:reply:{request.id}", timeout=0.3, ttl=60)
    assert time.monotonic() - started < 1.5
    # The request waits for a server, but not forever.
    assert rpc.decode_request(r.lpop(key)) == request
    r.delete(key)


def test_a_call_rejects_a_malformed_or_foreign_reply(redis_url: str, key: str) -> None:
    r = sync_redis(redis_url)
    request = rpc.Request("status")
    r.rpush(f"{key}:reply:{request.id}", b"{not json")
    with pytest.raises(rpc.Malformed):
        rpc.call(r, key, request, f"{key}:reply:{request.id}", timeout=1, ttl=60)
    r.rpush(f"{key}:reply:{request.id}", rpc.Reply.success("other", 1).encode())
    with pytest.raises(rpc.Malformed, match="other"):
        rpc.call(r, key, request, f"{key}:reply:{request.id}", timeout=1, ttl=60)
    r.delete(key)


async def test_push_appends_and_sets_the_expiry(redis_url: str, key: str) -> None:
    r = async_redis(redis_url)
    await rpc.push(r, key, "one", 30)
    await rpc.push(r, key, "two", 30)
    assert await r.lrange(key, 0, -1) == [b"one", b"two"]
    assert 0 < await r.ttl(key) <= 30
    await r.delete(key)


async def test_the_media_control_channel_speaks_it(redis_url: str) -> None:
    """RemoteSession and SessionServer over the real Redis, with junk on both lists."""
    from media import control

    remote = control.RemoteSession(redis_url, timeout=5)
    cmd, evt, worker_hb, _ = remote.keys()
    r = async_redis(redis_url)
    closed: list[str] = []

    async def echo(**args: object) -> dict[str, object]:
        return {"args": args}

    async def fail() -> None:
        raise RuntimeError("no such codec")

    async def refuse() -> None:
        raise NoCommonCodec("no common audio codec (offered ['G729'])")

    async def on_close(reason: str) -> None:
        closed.append(reason)

    server = control.SessionServer(r, remote.session_id, {"echo": echo, "fail": fail, "refuse": refuse}, on_close)
    await r.set(worker_hb, "1", px=control.HEARTBEAT_TTL_MS)
    await r.rpush(cmd, b"junk", b'{"id": "x"}')  # malformed commands: dropped, the session lives
    await r.rpush(evt, b"junk", b'{"re": 5, "ok": true}', b'{"event": 3}')  # and malformed replies/events
    serving = asyncio.create_task(server.run())
    events: list[tuple[str, dict[str, object]]] = []
    remote.on_event = lambda name, data: events.append((name, data))
    try:
        await remote.wait_started(within=5)
        assert await remote.request("echo", sdp="v=0") == {"args": {"sdp": "v=0"}}
        with pytest.raises(control.MediaError, match="RuntimeError: no such codec") as failed:
            await remote.request("fail")
        assert failed.value.code == ""  # an error the edge only reports: its text says it
        with pytest.raises(control.MediaError) as refused:
            await remote.request("refuse")
        assert refused.value.code == control.NOT_ACCEPTABLE  # one it acts on (488), by name
        with pytest.raises(control.MediaError, match="unknown command"):
            await remote.request("launch_rockets")
        await server.send_event("dtmf", digit="5")
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.02)
        assert events == [("dtmf", {"digit": "5"})]
    finally:
        await remote.close()
    assert await serving == "closed by the edge" and closed == ["closed by the edge"]
    assert remote.closed
    await r.ping()  # the shared client outlives the session
    await r.delete(cmd, evt)
