"""AMI actions any process can ask for: hangup, transfers, bridge, originate, channel list, status.

The AMI listener (`runami`) owns the one AMI connection per PBX. Other processes
(the web role, the edge) send it requests through Redis and wait for the reply
with a timeout, so an action never needs a second AMI login. Every action is
recorded as a `CallEvent` with its actor, whatever the outcome.

Requests and replies are `common.rpc` messages: a request (with a deadline) on
`REQUESTS_KEY`, its reply alone on `REPLY_KEY` of its id.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from common import rpc
from common.redisconn import async_redis, sync_redis

from .ami import AmiClient, AmiError, AmiNotConnected, AmiTimeout, ChannelGone

logger = logging.getLogger(__name__)

REQUESTS_KEY = "ccbridge:ami:{pbx}:requests"
REPLY_KEY = "ccbridge:ami:reply:{id}"
STATUS_KEY = "ccbridge:ami:{pbx}:status"
REPLY_TTL = 60  # seconds a reply waits for a requester that gave up


class AmiActionError(Exception):
    """An action failed; the message says why in words an operator understands."""


class ListenerUnavailable(AmiActionError):
    """No AMI listener answered: `runami` (or its Celery task) isn't running for that PBX."""


# --- the listener's side ----------------------------------------------------------------------


async def _execute(client: AmiClient, context: str, name: str, args: dict[str, Any]) -> Any:
    if name == "hangup":
        await client.hangup(args["channel"], int(args.get("cause", 16)))
        return {"channel": args["channel"]}
    if name == "blind_transfer":
        how = await client.blind_transfer(args["channel"], args["exten"], args.get("context") or context)
        return {"via": how}
    if name == "attended_transfer":
        await client.attended_transfer(args["channel"], args["exten"], args.get("context") or context)
        return {}
    if name == "bridge":
        await client.bridge(args["channel1"], args["channel2"])
        return {}
    if name == "originate":
        result = await client.originate(
            args["channel"],
            args["exten"],
            args.get("context") or context,
            callerid=args.get("callerid"),
            timeout=float(args.get("timeout", 30)),
        )
        return {
            "success": result.success,
            "reason": int(result.reason),
            "reason_text": result.reason.name,
            "uniqueid": result.uniqueid,
            "channel": result.channel,
        }
    if name == "channels":
        return await client.core_show_channels()
    if name == "status":
        latency = await client.ping()
        return {"connected": True, "latency_ms": latency}
    raise AmiActionError(f"unknown action {name!r}")


async def serve_actions(
    client: AmiClient, pbx: str, context: str, redis_url: str, stop: asyncio.Event
) -> None:
    """Answer action requests for one PBX until `stop` is set."""
    r = async_redis(redis_url)  # shared: not closed here
    key = REQUESTS_KEY.format(pbx=pbx)
    running: set[asyncio.Task[None]] = set()  # actions run concurrently; a slow Originate blocks none
    while not stop.is_set():
        try:
            item = await r.blpop([key], timeout=1)
        except RedisError as exc:
            logger.warning("AMI %s: Redis unavailable for action requests (%s)", pbx, exc)
            await asyncio.sleep(1.0)
            continue
        if item is None:
            continue
        task = asyncio.create_task(_answer(r, client, context, item[1]))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.wait(running, timeout=5)


async def _answer(r: aioredis.Redis, client: AmiClient, context: str, raw: bytes) -> None:
    try:
        request = rpc.decode_request(raw)
    except rpc.Malformed as exc:
        logger.warning("dropping a malformed AMI action request: %s", exc)
        return
    if request.expired():
        return  # the requester has given up already
    name = request.op
    try:
        reply = rpc.Reply.success(request.id, await _execute(client, context, name, request.args))
    except ChannelGone as exc:
        reply = rpc.Reply.failure(request.id, f"channel gone: {exc}")
    except AmiNotConnected:
        reply = rpc.Reply.failure(request.id, "the AMI link to the PBX is down")
    except AmiTimeout as exc:
        reply = rpc.Reply.failure(request.id, f"timeout: {exc}")
    except (AmiError, AmiActionError, KeyError, ValueError) as exc:
        reply = rpc.Reply.failure(request.id, str(exc))
    except Exception as exc:  # the requester must get an answer, not a misleading timeout
        logger.exception("AMI action %s failed", name)
        reply = rpc.Reply.failure(request.id, f"internal error: {type(exc).__name__}")
    try:
        await rpc.push(r, REPLY_KEY.format(id=request.id), reply.encode(), REPLY_TTL)
    except RedisError as exc:
        logger.warning("AMI action %s: could not send the reply (%s)", name, exc)


# --- everyone else's side -----------------------------------------------------------------------


@dataclass
class AmiService:
    """Ask the AMI listener of one PBX to act. Synchronous, for views and tasks."""

    pbx: str
    timeout: float | None = None  # default: settings.AMI_ACTION_TIMEOUT
    redis_url: str | None = None

    def _redis(self) -> redis.Redis:
        return sync_redis(self.redis_url or settings.REDIS_URL)  # the process's pool: not closed here

    def request(self, action: str, timeout: float | None = None, **args: Any) -> Any:
        limit = timeout or self.timeout or settings.AMI_ACTION_TIMEOUT
        request = rpc.Request(action, args, deadline=time.time() + limit)
        r = self._redis()
        try:
            # No live listener status: fail now rather than after the whole timeout.
            if not r.exists(STATUS_KEY.format(pbx=self.pbx)):
                raise ListenerUnavailable(
                    f"no AMI listener is active for PBX {self.pbx!r}; is runami running?"
                )
            # Never less than a second, as the whole-second BLPOP this replaced.
            reply = rpc.call(
                r,
                REQUESTS_KEY.format(pbx=self.pbx),
                request,
                REPLY_KEY.format(id=request.id),
                timeout=max(1.0, limit),
                ttl=REPLY_TTL,
            )
        except RedisError as exc:
            raise AmiActionError(f"Redis is unreachable: {exc}") from exc
        except rpc.RpcTimeout:
            raise ListenerUnavailable(
                f"no answer from the AMI listener of PBX {self.pbx!r} within {limit:.0f}s; is runami running?"
            ) from None
        except rpc.Malformed as exc:
            raise AmiActionError(f"unreadable answer from the AMI listener: {exc}") from exc
        if not reply.ok:
            raise AmiActionError(reply.error or "the action failed")
        return reply.result

    def status(self) -> dict[str, Any]:
        """The last status the listener published (connected, latency, last event)."""
        try:
            raw = self._redis().get(STATUS_KEY.format(pbx=self.pbx))
        except RedisError:
            raw = None
        return json.loads(raw) if raw else {"pbx": self.pbx, "connected": False, "listener": False}


def audited(kind: str) -> Callable[..., Any]:
    """Record the action as a CallEvent (with actor, args and outcome), then return or raise."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(service: AmiService, *args: Any, actor: Any = None, call: Any = None, **kwargs: Any) -> Any:
            from .models import CallEvent

            payload = {"pbx": service.pbx, "args": list(args), **kwargs}
            try:
                result = fn(service, *args, **kwargs)
            except AmiActionError as exc:
                CallEvent.record(
                    f"action.{kind}", call=call, actor=actor, ok=False, error=str(exc), **payload
                )
                raise
            CallEvent.record(f"action.{kind}", call=call, actor=actor, ok=True, result=result, **payload)
            return result

        return run

    return wrap


@audited("hangup")
def hangup_channel(service: AmiService, channel: str) -> Any:
    return service.request("hangup", channel=channel)


@audited("blind_transfer")
def transfer_call(service: AmiService, channel: str, exten: str, context: str | None = None) -> Any:
    return service.request("blind_transfer", channel=channel, exten=exten, context=context)


@audited("attended_transfer")
def attended_transfer(service: AmiService, channel: str, exten: str, context: str | None = None) -> Any:
    return service.request("attended_transfer", channel=channel, exten=exten, context=context)


@audited("bridge")
def bridge_channels(service: AmiService, channel1: str, channel2: str) -> Any:
    return service.request("bridge", channel1=channel1, channel2=channel2)


@audited("originate")
def originate_call(
    service: AmiService, extension: str, number: str, context: str | None = None, timeout: float = 30.0
) -> Any:
    # Ring the operator's extension first; when it answers, Asterisk dials the number.
    return service.request(
        "originate",
        timeout=timeout + 5,
        channel=f"PJSIP/{extension}",
        exten=number,
        context=context,
        callerid=f"Click-to-call <{extension}>",
    )


def get_channels(service: AmiService) -> list[dict[str, str]]:
    return service.request("channels")


def is_connected(service: AmiService) -> bool:
    return bool(service.status().get("connected"))
