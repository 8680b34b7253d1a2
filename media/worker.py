"""The media worker host: one asyncio loop per worker process carrying many call sessions.

A Celery task (`media.tasks.start_session`) hands a session to the host of the process it runs
in and returns as soon as the session is listening; the session then lives on the host's loop,
in a background thread, talking to the edge through `media.control`. Concurrency is the number
of sessions per process; a host at capacity refuses new ones, and Celery gives the task to
another worker process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiortc import RTCIceServer

from common.redisconn import async_redis
from connectycube.ice import remote_candidate
from connectycube.signalling import IceCandidate
from media.control import HEARTBEAT_TTL_MS, SessionServer
from media.rtp.socket import PortRange
from media.session.session import MediaSession, SessionConfig

logger = logging.getLogger(__name__)


class AtCapacity(Exception):
    """This worker process already carries its maximum of sessions."""


@dataclass
class HostConfig:
    redis_url: str
    max_sessions: int = 100
    rtp_host: str = "127.0.0.1"
    rtp_advertised_host: str | None = None
    rtp_port_min: int = 20000
    rtp_port_max: int = 30000
    ice_host_addresses: list[str] | None = None
    ice_servers: list[dict[str, Any]] = field(default_factory=list)


class WorkerHost:
    """The sessions of one worker process, on one loop in a daemon thread."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.sessions: dict[str, MediaSession] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="media-loop", daemon=True)
        self._thread.start()
        self._redis: aioredis.Redis | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def media_config(self, prefer_opus: bool) -> SessionConfig:
        c = self.config
        return SessionConfig(
            rtp_host=c.rtp_host,
            rtp_advertised_host=c.rtp_advertised_host,
            rtp_ports=PortRange(c.rtp_port_min, c.rtp_port_max),
            host_addresses=c.ice_host_addresses,
            ice_servers=[RTCIceServer(**server) for server in c.ice_servers],
            prefer_opus=prefer_opus,
        )

    def start_session(self, session_id: str, *, prefer_opus: bool = False, timeout: float = 5.0) -> None:
        """From the task's thread: start a session on the loop; return once it serves commands."""
        if len(self.sessions) >= self.config.max_sessions:
            raise AtCapacity(f"{len(self.sessions)} sessions, the maximum for this worker process")
        future = asyncio.run_coroutine_threadsafe(self._start(session_id, prefer_opus), self.loop)
        future.result(timeout)

    async def _start(self, session_id: str, prefer_opus: bool) -> None:
        if self._redis is None:
            self._redis = async_redis(self.config.redis_url)  # the pool of the host's loop
        session = MediaSession(self.media_config(prefer_opus))
        self.sessions[session_id] = session
        server = SessionServer(self._redis, session_id, self._handlers(session), self._closer(session_id, session))
        session.on_dtmf = lambda digit: self._spawn(server.send_event("dtmf", digit=digit))
        session.pc.on(
            "iceconnectionstatechange",
            lambda: self._spawn(server.send_event("ice_state", state=session.pc.iceConnectionState)),
        )
        # The first heartbeat tells the edge the session is up before we return.
        _, _, worker_hb, _ = server.keys()
        await self._redis.set(worker_hb, "1", px=HEARTBEAT_TTL_MS)
        self._spawn(server.run())
        logger.info("media session %s started (%d on this worker)", session_id, len(self.sessions))

    def _closer(self, session_id: str, session: MediaSession) -> Any:
        async def close(reason: str) -> None:
            self.sessions.pop(session_id, None)
            await session.close()
            logger.info("media session %s closed: %s", session_id, reason)

        return close

    def _handlers(self, session: MediaSession) -> dict[str, Any]:
        async def prepare_rtp() -> dict[str, Any]:
            local = await session.prepare_rtp()
            return {"host": local.host, "port": local.port, "sdp": local.sdp}

        async def set_rtp_remote(sdp: str) -> dict[str, Any]:
            return {"sdp": await session.set_rtp_remote(sdp)}

        async def set_hold(direction: str) -> dict[str, Any]:
            session.set_hold(direction)
            return {}

        async def make_offer() -> dict[str, Any]:
            return {"sdp": await session.create_offer()}

        async def make_answer(sdp: str) -> dict[str, Any]:
            return {"sdp": await session.accept_offer(sdp)}

        async def set_answer(sdp: str) -> dict[str, Any]:
            await session.set_answer(sdp)
            return {}

        async def add_candidates(candidates: list[dict[str, Any]]) -> dict[str, Any]:
            errors = []
            for c in candidates:
                try:
                    candidate = IceCandidate(c["index"], c["mid"], c["candidate"])
                    await session.add_ice_candidate(remote_candidate(candidate))
                except (ValueError, KeyError) as exc:
                    errors.append(str(exc))
            return {"errors": errors}

        async def send_dtmf(digits: str) -> dict[str, Any]:
            await session.send_dtmf(digits)
            return {}

        async def stats() -> dict[str, Any]:
            return await session.get_stats()

        return {
            f.__name__: f
            for f in (
                prepare_rtp,
                set_rtp_remote,
                set_hold,
                make_offer,
                make_answer,
                set_answer,
                add_candidates,
                send_dtmf,
                stats,
            )
        }

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_host: WorkerHost | None = None
_host_lock = threading.Lock()


def get_host(config_factory: Any) -> WorkerHost:
    """The host of this process, made on first use (after Celery forked the process)."""
    global _host
    with _host_lock:
        if _host is None:
            _host = WorkerHost(config_factory())
        return _host
