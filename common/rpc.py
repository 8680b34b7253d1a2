"""JSON requests and replies over Redis lists, with ids, validation and timeouts. Django-free.

On the wire, one JSON object per list item:
    request  {"id": "<id>", "op": "<name>", "args": {...}, "deadline": <epoch seconds, optional>}
    reply    {"re": "<id>", "ok": true, "result": ...}  or  {"re": "<id>", "ok": false, "error": "<why>"}

Two ways to carry replies use it:
* one reader per requester, replies multiplexed with other messages on one list (the media
  control channel): `PendingReplies` matches replies to waiting requests by id;
* one reply list per request (the AMI actions): `call` pushes the request and waits on its key.

Decoders raise `Malformed` (a ValueError); callers log and drop, never crash.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

# BLPOP waits at most this long per call, so a client's socket timeout always exceeds it and a
# long wait is a few short ones (see common.redisconn.SOCKET_TIMEOUT).
POLL_SECONDS = 1.0


class RpcError(Exception):
    """No usable reply: none came in time, or it was malformed."""


class RpcTimeout(RpcError):
    """No reply within the timeout."""


class Malformed(ValueError):
    """A message that is not a valid request or reply."""


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Request:
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    deadline: float | None = None  # time.time() after which the requester no longer waits

    def expired(self, now: float | None = None) -> bool:
        return self.deadline is not None and (time.time() if now is None else now) > self.deadline

    def encode(self) -> str:
        message: dict[str, Any] = {"id": self.id, "op": self.op, "args": self.args}
        if self.deadline is not None:
            message["deadline"] = self.deadline
        return json.dumps(message)


@dataclass(frozen=True)
class Reply:
    re: str
    ok: bool
    result: Any = None
    error: str = ""
    code: str = ""  # what kind of failure, for the requester to act on (not just to show)

    @classmethod
    def success(cls, re: str, result: Any) -> Reply:
        return cls(re, True, result)

    @classmethod
    def failure(cls, re: str, error: str, code: str = "") -> Reply:
        return cls(re, False, error=error, code=code)

    def encode(self) -> str:
        if self.ok:
            return json.dumps({"re": self.re, "ok": True, "result": self.result})
        failure = {"re": self.re, "ok": False, "error": self.error}
        return json.dumps({**failure, "code": self.code} if self.code else failure)


def loads(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse one JSON object (or pass a parsed one through); raise Malformed otherwise."""
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        message = json.loads(raw)
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise Malformed(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise Malformed(f"not a JSON object but {type(message).__name__}")
    return message


def _text(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{name!r} must be a non-empty string, not {value!r:.40}")
    return value


def decode_request(raw: bytes | str | Mapping[str, Any]) -> Request:
    """Return the request in `raw`; raise Malformed if it is not one."""
    message = loads(raw)
    args = message.get("args")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise Malformed(f"'args' must be an object, not {type(args).__name__}")
    deadline = message.get("deadline")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int | float) or not math.isfinite(deadline)
    ):
        raise Malformed(f"'deadline' must be a number, not {deadline!r:.40}")
    return Request(_text(message, "op"), args, _text(message, "id"), deadline)


def decode_reply(raw: bytes | str | Mapping[str, Any]) -> Reply:
    """Return the reply in `raw`; raise Malformed if it is not one."""
    message = loads(raw)
    ok = message.get("ok")
    if not isinstance(ok, bool):
        raise Malformed(f"'ok' must be true or false, not {ok!r:.40}")
    error = message.get("error") or ""
    if not isinstance(error, str):
        raise Malformed(f"'error' must be a string, not {type(error).__name__}")
    code = message.get("code") or ""
    if not isinstance(code, str):
        raise Malformed(f"'code' must be a string, not {type(code).__name__}")
    return Reply(_text(message, "re"), ok, message.get("result"), error, code)


# One command, not a MULTI pipeline: a pipeline takes a connection from the pool even when `r`
# holds one of its own (`common.redisconn.leased_redis`).
_PUSH = "redis.call('RPUSH', KEYS[1], ARGV[1]); redis.call('EXPIRE', KEYS[1], ARGV[2])"


async def push(r: aioredis.Redis, key: str, message: str, ttl: int) -> None:
    """Append one message to a list and (re)set the list's expiry, atomically, in one round trip."""
    await r.eval(_PUSH, 1, key, message, ttl)


class PendingReplies:
    """Requests waiting for their replies, by id, for a requester with one reader of replies."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[Reply]] = {}

    def __len__(self) -> int:
        return len(self._futures)

    async def call(
        self, request: Request, send: Callable[[str], Awaitable[Any]], timeout: float  # noqa: ASYNC109
    ) -> Reply:
        """Send `request.encode()` with `send`; return its reply, or raise RpcTimeout."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._futures[request.id] = future  # before sending: the reply may beat the send's return
        try:
            await send(request.encode())
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RpcTimeout(f"no reply to {request.op} within {timeout:.1f}s") from None
        finally:
            self._futures.pop(request.id, None)

    def resolve(self, reply: Reply) -> bool:
        """Hand a reply to its waiting request; False if none waits (late, or unknown)."""
        future = self._futures.get(reply.re)
        if future is None or future.done():
            return False
        future.set_result(reply)
        return True

    def fail_all(self, error: BaseException) -> None:
        """Make every waiting request raise `error` (the other end is gone)."""
        for future in self._futures.values():
            if not future.done():
                future.set_exception(error)


def call(
    r: redis.Redis,
    key: str,
    request: Request,
    reply_key: str,
    *,
    timeout: float,
    ttl: int,
) -> Reply:
    """Push `request` on `key` and wait up to `timeout` for its reply on `reply_key`.

    Raise RpcTimeout without a reply, Malformed for a bad one, RedisError if Redis fails.
    """
    with r.pipeline(transaction=True) as pipe:
        # The expiry keeps requests nobody served from piling up.
        pipe.rpush(key, request.encode()).expire(key, ttl).execute()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        item = r.blpop([reply_key], timeout=min(POLL_SECONDS, max(left, 0.01)))
        if item is None:
            continue
        reply = decode_reply(item[1])
        if reply.re != request.id:
            raise Malformed(f"reply {reply.re!r} on the reply key of request {request.id!r}")
        return reply
    raise RpcTimeout(f"no reply to {request.op} within {timeout:.1f}s")
