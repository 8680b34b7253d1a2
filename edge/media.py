"""The edge's media legs: sessions on the media workers, behind the `edge.ports.Media` port.

Django-free. A session is started by `start_task` (the edge service sends a Celery task to the
`media` queue), then driven over Redis (`media.control`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from media.control import NOT_ACCEPTABLE, MediaError, RemotePeer, RemoteSession

from .ports import NotAcceptable

logger = logging.getLogger(__name__)

StartTask = Callable[[str, bool], Awaitable[None]]


class WorkerMediaLeg:
    """One session on a worker (see `edge.ports.MediaLeg`)."""

    def __init__(self, session: RemoteSession) -> None:
        self.session = session
        self.session_id = session.session_id
        self.peer = RemotePeer(session)
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None
        session.on_event = self._on_session_event

    def __repr__(self) -> str:
        return f"<WorkerMediaLeg {self.session_id}>"

    def _on_session_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "ice_state":
            self.peer.ice_state(str(data.get("state", "")))  # the ConnectyCube call watches ICE
        elif self.on_event is not None:
            self.on_event(name, data)

    async def answer_phone(self, offer: str) -> str:
        try:
            return (await self.session.request("set_rtp_remote", sdp=offer))["sdp"]
        except MediaError as exc:
            if exc.code == NOT_ACCEPTABLE:
                raise NotAcceptable(str(exc)) from exc
            raise

    async def set_hold(self, direction: str) -> None:
        await self.session.request("set_hold", direction=direction)

    async def send_dtmf(self, digits: str) -> None:
        await self.session.request("send_dtmf", digits=digits)

    async def stats(self) -> dict[str, Any] | None:
        try:
            return await self.session.request("stats", timeout=3)
        except MediaError as exc:
            logger.info("%r: no stats: %s", self, exc)
            return None

    async def close(self) -> None:
        try:
            await self.session.close()
        except Exception:  # Redis trouble: the worker's own heartbeat watch frees the session
            logger.exception("%r: close failed", self)


class WorkerMedia:
    """Start sessions on the media workers (see `edge.ports.Media`)."""

    def __init__(self, redis_url: str, start_task: StartTask, *, start_timeout: float, timeout: float) -> None:
        self.redis_url = redis_url
        self.start_task = start_task
        self.start_timeout = start_timeout
        self.timeout = timeout

    async def open(self, *, prefer_opus: bool) -> WorkerMediaLeg:
        session = RemoteSession(self.redis_url, timeout=self.timeout)
        leg = WorkerMediaLeg(session)
        try:
            await self.start_task(session.session_id, prefer_opus)
            await session.wait_started(self.start_timeout)
        except BaseException:
            await leg.close()
            raise
        return leg

