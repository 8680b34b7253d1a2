"""The edge <-> media worker exchange for one call, over Redis. Django-free.

The edge starts a session on some worker (a Celery task on the `media` queue) and then talks to
it through two Redis lists per session: commands to the worker, replies and events back. The
worker refreshes a heartbeat key while the session lives; the edge watches it and ends the call
within `HEARTBEAT_TTL_MS` (plus a check interval) when a worker dies. The edge refreshes its own key, so a worker
whose edge died frees the session too.

Commands (edge -> worker) are `common.rpc` requests, each answered by an `common.rpc` reply
(`{"re": id, "ok": ..., "result"/"error"}`) on the event list:
    prepare_rtp -> {host, port, sdp}            our SIP-leg address and SDP offer
    set_rtp_remote {sdp} -> {sdp}               the phone's SDP (INVITE, re-INVITE): our answer
    set_hold {direction}                        our direction towards the phone
    make_offer -> {sdp}; make_answer {sdp} -> {sdp}; set_answer {sdp}     the WebRTC leg
    add_candidates {candidates} -> {errors}
    send_dtmf {digits}; stats -> {...}; close
Events (worker -> edge): ice_state {state}, dtmf {digit}, closed {reason}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from common import rpc
from common.redisconn import leased_redis, release
from connectycube.signalling import IceCandidate
from sip.sdp import NoCommonCodec

logger = logging.getLogger(__name__)

CMD_KEY = "ccbridge:media:{sid}:cmd"
EVT_KEY = "ccbridge:media:{sid}:evt"
WORKER_HB_KEY = "ccbridge:media:{sid}:worker"
EDGE_HB_KEY = "ccbridge:media:{sid}:edge"
HEARTBEAT_INTERVAL = 0.5
# Milliseconds a heartbeat lives: a dead worker is noticed within TTL + INTERVAL = 2.5 s, so the
# edge sends BYE within the 3 s the design promises.
HEARTBEAT_TTL_MS = 2000
KEY_TTL = 3600  # lists left behind by a crash expire on their own


def session_keys(session_id: str) -> tuple[str, str, str, str]:
    """The command list, event list, worker heartbeat and edge heartbeat keys of a session."""
    return tuple(key.format(sid=session_id) for key in (CMD_KEY, EVT_KEY, WORKER_HB_KEY, EDGE_HB_KEY))


class MediaError(Exception):
    """The worker refused or failed a command, or did not answer in time."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code  # ERROR_CODES' value when the worker said what kind of failure it was


# Failures the edge acts on, named on the wire so that it never reads the error's text.
NOT_ACCEPTABLE = "not_acceptable"  # the phone's SDP shares no codec with the worker
ERROR_CODES: dict[type[Exception], str] = {NoCommonCodec: NOT_ACCEPTABLE}


def error_code(exc: Exception) -> str:
    return next((code for kind, code in ERROR_CODES.items() if isinstance(exc, kind)), "")


class WorkerLost(MediaError):
    """The worker's heartbeat stopped: it died or lost Redis."""


# --- edge side --------------------------------------------------------------------------------


EventHandler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class RemoteSession:
    """The edge's handle on one media session running on a worker."""

    def __init__(self, redis_url: str, session_id: str | None = None, *, timeout: float = 10.0) -> None:
        self.session_id = session_id or uuid.uuid4().hex
        self.redis_url = redis_url
        self.timeout = timeout
        self.on_event: EventHandler | None = None
        self._pending = rpc.PendingReplies()
        self._reader: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.closed = False
        # Two connections leased from the process's pool for the session's life: one blocks
        # reading the worker's replies and events, one sends commands and heartbeats.
        self._control: aioredis.Redis | None = None
        self._listen: aioredis.Redis | None = None

    def __repr__(self) -> str:
        return f"<RemoteSession {self.session_id}>"

    @property
    def redis(self) -> aioredis.Redis:
        """The session's command connection (leased on first use, inside the loop)."""
        if self._control is None:
            self._control = leased_redis(self.redis_url)
        return self._control

    def keys(self) -> tuple[str, str, str, str]:
        return session_keys(self.session_id)

    async def wait_started(self, within: float) -> None:
        """Wait for the worker's first heartbeat; raise MediaError if none comes."""
        _, _, worker_hb, edge_hb = self.keys()
        await self.redis.set(edge_hb, "1", px=HEARTBEAT_TTL_MS)
        deadline = asyncio.get_running_loop().time() + within
        while not await self.redis.exists(worker_hb):
            if asyncio.get_running_loop().time() > deadline:
                raise MediaError(f"no media worker took session {self.session_id} within {within:.0f}s")
            await asyncio.sleep(0.02)
        self._listen = leased_redis(self.redis_url)
        self._reader = asyncio.create_task(self._read(), name=f"media evt {self.session_id}")
        self._watch = asyncio.create_task(self._heartbeats(), name=f"media hb {self.session_id}")

    async def request(self, op: str, timeout: float | None = None, **args: Any) -> Any:  # noqa: ASYNC109
        if self._lost.is_set():
            raise WorkerLost(f"the media worker of session {self.session_id} is gone")
        if self.closed:
            raise MediaError(f"session {self.session_id} is closed")
        cmd, *_ = self.keys()
        redis = self.redis
        try:
            reply = await self._pending.call(
                rpc.Request(op, args), lambda message: rpc.push(redis, cmd, message, KEY_TTL), timeout or self.timeout
            )
        except rpc.RpcTimeout:
            raise MediaError(f"media worker: no answer to {op} within {timeout or self.timeout:.0f}s") from None
        if not reply.ok:
            raise MediaError(reply.error or "media worker error", reply.code)
        return reply.result

    async def _read(self) -> None:
        _, evt, _, _ = self.keys()
        assert self._listen is not None
        while not self.closed:
            try:
                item = await self._listen.blpop([evt], timeout=1)
            except aioredis.RedisError as exc:
                logger.warning("%r: Redis error reading events: %s", self, exc)
                await asyncio.sleep(0.5)
                continue
            if item is None:
                continue
            # Replies and events share the list: a reply has "re", an event has "event".
            try:
                message = rpc.loads(item[1])
                if "re" in message:
                    self._pending.resolve(rpc.decode_reply(message))
                    continue
                name, data = message.get("event"), message.get("data") or {}
                if not isinstance(name, str) or not isinstance(data, dict):
                    raise rpc.Malformed("neither a reply nor an event")
            except rpc.Malformed as exc:
                logger.warning("%r: malformed message from the worker dropped: %s", self, exc)
                continue
            await self._emit(name, data)

    async def _emit(self, name: str, data: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            result = self.on_event(name, data)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            logger.exception("%r: event handler for %s failed", self, name)

    async def _heartbeats(self) -> None:
        _, _, worker_hb, edge_hb = self.keys()
        while not self.closed:
            try:
                await self.redis.set(edge_hb, "1", px=HEARTBEAT_TTL_MS)
                alive = await self.redis.exists(worker_hb)
            except aioredis.RedisError as exc:
                logger.warning("%r: Redis error on heartbeat: %s", self, exc)
                alive = True  # our own Redis trouble is not the worker's death
            if not alive:
                self._lost.set()
                self._pending.fail_all(WorkerLost("media worker lost"))
                await self._emit("worker_lost", {})
                return
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def close(self) -> None:
        """Ask the worker to end the session (if it still can) and stop watching."""
        if self.closed:
            return
        if not self._lost.is_set():
            try:
                await self.request("close", timeout=3)
            except MediaError as exc:
                logger.info("%r: close: %s", self, exc)
        self.closed = True
        for task in (self._reader, self._watch):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._reader, self._watch) if t), return_exceptions=True)
        _, _, _, edge_hb = self.keys()
        try:
            await self.redis.delete(edge_hb)
        finally:
            for client in (self._listen, self._control):
                if client is not None:
                    await release(client)


class RemotePeer:
    """A ConnectyCube call's media end on a worker (see `connectycube.peer.Peer`)."""

    def __init__(self, session: RemoteSession) -> None:
        self.session = session
        self.on_ice_state: Callable[[str], None] | None = None
        self._has_remote = False

    def ice_state(self, state: str) -> None:
        if self.on_ice_state is not None:
            self.on_ice_state(state)

    async def make_offer(self) -> str:
        return (await self.session.request("make_offer"))["sdp"]

    async def make_answer(self, offer: str) -> str:
        self._has_remote = True
        return (await self.session.request("make_answer", sdp=offer))["sdp"]

    async def set_answer(self, answer: str) -> None:
        await self.session.request("set_answer", sdp=answer)
        self._has_remote = True

    def has_remote_description(self) -> bool:
        return self._has_remote

    async def add_candidates(self, candidates: list[IceCandidate]) -> list[str]:
        payload = [{"index": c.sdp_mline_index, "mid": c.sdp_mid, "candidate": c.candidate} for c in candidates]
        return (await self.session.request("add_candidates", candidates=payload))["errors"]

    async def close(self) -> None:
        pass  # the session's owner closes it: the SIP leg shares it


# --- worker side --------------------------------------------------------------------------------


@dataclass
class SessionServer:
    """Serve one session's commands on the worker until it closes or the edge goes away."""

    redis: aioredis.Redis
    session_id: str
    handlers: dict[str, Callable[..., Awaitable[Any]]]
    on_close: Callable[[str], Awaitable[None]]

    def keys(self) -> tuple[str, str, str, str]:
        return session_keys(self.session_id)

    async def send_event(self, name: str, **data: Any) -> None:
        _, evt, _, _ = self.keys()
        await rpc.push(self.redis, evt, json.dumps({"event": name, "data": data}), KEY_TTL)

    async def run(self) -> str:
        """Answer commands until `close`; return why the session ended."""
        cmd, evt, worker_hb, edge_hb = self.keys()
        beat = asyncio.create_task(self._beat(worker_hb, edge_hb))
        reason = "closed by the edge"
        try:
            while True:
                if beat.done():
                    reason = beat.result()
                    break
                item = await self.redis.blpop([cmd], timeout=1)
                if item is None:
                    continue
                try:
                    request = rpc.decode_request(item[1])
                except rpc.Malformed as exc:
                    logger.warning("session %s: malformed command dropped: %s", self.session_id, exc)
                    continue
                if request.op == "close":
                    await self._reply(evt, rpc.Reply.success(request.id, {}))
                    break
                handler = self.handlers.get(request.op)
                try:
                    if handler is None:
                        raise MediaError(f"unknown command {request.op!r}")
                    result = await handler(**request.args)
                    await self._reply(evt, rpc.Reply.success(request.id, result or {}))
                except Exception as exc:  # the edge gets the error; the session lives on
                    logger.warning("session %s: %s failed: %s", self.session_id, request.op, exc)
                    error = f"{type(exc).__name__}: {exc}"
                    await self._reply(evt, rpc.Reply.failure(request.id, error, error_code(exc)))
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            await self.redis.delete(worker_hb, cmd)
            await self.on_close(reason)
        return reason

    async def _reply(self, evt: str, reply: rpc.Reply) -> None:
        await rpc.push(self.redis, evt, reply.encode(), KEY_TTL)

    async def _beat(self, worker_hb: str, edge_hb: str) -> str:
        missed_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            await self.redis.set(worker_hb, "1", px=HEARTBEAT_TTL_MS)
            if await self.redis.exists(edge_hb):
                missed_since = None
            else:
                missed_since = missed_since or loop.time()
                if loop.time() - missed_since > HEARTBEAT_TTL_MS / 1000 * 3:
                    return "the edge went away"
            await asyncio.sleep(HEARTBEAT_INTERVAL)
