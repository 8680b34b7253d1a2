"""The AMI listener of one PBX: connection, event ingest, resync, actions, status, and the lock.

`runami` runs one `PbxListener` per enabled PBX on one asyncio loop; the Celery task
`calls.tasks.run_ami_listener` runs the same thing. A Redis lock per PBX makes a
second instance wait as a standby instead of double-counting calls.
"""

import asyncio
import json
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from .ami import AmiClient, AmiError, AmiEvent
from .ami_service import STATUS_KEY, serve_actions
from .board import publish_call, publish_status
from .models import Pbx
from .tracker import CallTracker

logger = logging.getLogger(__name__)

LOCK_KEY = "ccbridge:ami:{pbx}:lock"
LOCK_TTL = 15  # seconds; renewed every LOCK_TTL / 3 while the listener lives
STATUS_INTERVAL = 2.0
_RESYNC = object()  # a queue marker: "reconcile with these live channels now"


class PbxListener:
    def __init__(
        self, pbx: Pbx, *, redis_url: str | None = None, ping_interval: float = 5.0, ping_timeout: float = 3.0
    ) -> None:
        self.pbx = pbx
        self.redis_url = redis_url or settings.REDIS_URL
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.tracker = CallTracker(pbx, publish_call)
        # One thread for the ORM keeps events in order and off the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ami-{pbx.name}")
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._lost_at: datetime | None = None
        self.client: AmiClient | None = None
        self.events_received = 0
        self.last_event_name = ""
        self.resyncs = 0

    def __repr__(self) -> str:
        return f"<PbxListener {self.pbx.name}>"

    async def run(self, stop: asyncio.Event) -> None:
        r = aioredis.Redis.from_url(self.redis_url)
        try:
            if not await self._acquire(r, stop):
                return
            logger.info("AMI %s: this instance (%s) is active", self.pbx.name, self.owner)
            await self._run_locked(r, stop)
        finally:
            await self._release(r)
            await r.aclose()
            self._executor.shutdown(wait=True)

    async def _run_locked(self, r: aioredis.Redis, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._in_thread(self.tracker.load))
        secret = self.pbx.secret.reveal() if self.pbx.secret else ""
        self.client = AmiClient(
            self.pbx.host,
            self.pbx.port,
            self.pbx.username,
            secret,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            on_event=self._on_event,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
        )
        await self.client.start()
        tasks = [
            asyncio.create_task(self._ingest(), name=f"ingest {self.pbx.name}"),
            asyncio.create_task(self._keep_lock(r, stop), name=f"lock {self.pbx.name}"),
            asyncio.create_task(self._report_status(r, stop), name=f"status {self.pbx.name}"),
            asyncio.create_task(serve_actions(self.client, self.pbx.name, self.pbx.context, self.redis_url, stop)),
        ]
        try:
            await stop.wait()
        finally:
            await self.client.stop()
            await self._queue.put(None)  # let the ingest loop drain and end
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._write_status(r, connected=False)

    # --- AMI callbacks (on the loop) ---

    def _on_event(self, event: AmiEvent) -> None:
        self.events_received += 1
        self.last_event_name = event.name
        self._queue.put_nowait(event)

    async def _on_connect(self) -> None:
        assert self.client is not None
        try:
            channels = await self.client.core_show_channels()
        except AmiError as exc:
            logger.warning("AMI %s: CoreShowChannels failed after connect: %s", self.pbx.name, exc)
            return
        await self._queue.put((_RESYNC, channels, self._lost_at))

    async def _on_disconnect(self, reason: str) -> None:
        self._lost_at = timezone.now()
        logger.warning("AMI %s: link lost (%s)", self.pbx.name, reason)

    # --- ingest (events and resyncs, in order, on the ORM thread) ---

    async def _ingest(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            if item is None:
                break
            batch = [item]
            while not self._queue.empty() and len(batch) < 500:
                nxt = self._queue.get_nowait()
                if nxt is None:
                    self._queue.put_nowait(None)
                    break
                batch.append(nxt)
            await loop.run_in_executor(self._executor, self._in_thread(self._apply, batch))

    def _apply(self, batch: list[Any]) -> None:
        for item in batch:
            if isinstance(item, tuple) and item and item[0] is _RESYNC:
                _, channels, lost_at = item
                self.tracker.resync(channels, lost_at=lost_at)
                self.resyncs += 1
            else:
                self.tracker.handle(item)

    @staticmethod
    def _in_thread(fn: Any, *args: Any) -> Any:
        def run() -> Any:
            close_old_connections()  # a long-lived thread must not keep a dead DB connection
            return fn(*args)

        return run

    # --- lock and status ---

    async def _acquire(self, r: aioredis.Redis, stop: asyncio.Event) -> bool:
        key = LOCK_KEY.format(pbx=self.pbx.name)
        announced = False
        while not stop.is_set():
            if await r.set(key, self.owner, nx=True, ex=LOCK_TTL):
                return True
            if not announced:
                holder = (await r.get(key) or b"?").decode()
                logger.info("AMI %s: standby; %s holds the listener lock", self.pbx.name, holder)
                announced = True
            try:
                await asyncio.wait_for(stop.wait(), timeout=LOCK_TTL / 3)
            except TimeoutError:
                pass
        return False

    async def _keep_lock(self, r: aioredis.Redis, stop: asyncio.Event) -> None:
        key = LOCK_KEY.format(pbx=self.pbx.name)
        while not stop.is_set():
            await asyncio.sleep(LOCK_TTL / 3)
            holder = await r.get(key)
            if holder is not None and holder.decode() != self.owner:
                logger.error("AMI %s: lost the listener lock to %s; stopping", self.pbx.name, holder.decode())
                stop.set()
                return
            await r.set(key, self.owner, ex=LOCK_TTL)

    async def _release(self, r: aioredis.Redis) -> None:
        key = LOCK_KEY.format(pbx=self.pbx.name)
        try:
            if (await r.get(key) or b"").decode() == self.owner:
                await r.delete(key)
        except Exception:
            logger.warning("AMI %s: could not release the lock", self.pbx.name, exc_info=True)

    def status(self, connected: bool | None = None) -> dict[str, Any]:
        client = self.client
        return {
            "pbx": self.pbx.name,
            "listener": True,
            "connected": client.connected if connected is None and client else bool(connected),
            "latency_ms": client.latency_ms if client else None,
            "last_event_at": client.last_event_at if client else None,
            "last_event": self.last_event_name,
            "events": self.events_received,
            "resyncs": self.resyncs,
            "last_error": client.last_error if client else None,
            "at": time.time(),
        }

    async def _write_status(self, r: aioredis.Redis, connected: bool | None = None) -> None:
        status = self.status(connected)
        await r.set(STATUS_KEY.format(pbx=self.pbx.name), json.dumps(status), ex=int(STATUS_INTERVAL * 5))
        await publish_status(status)

    async def _report_status(self, r: aioredis.Redis, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._write_status(r)
            except Exception:
                logger.warning("AMI %s: could not write the status", self.pbx.name, exc_info=True)
            await asyncio.sleep(STATUS_INTERVAL)


async def run_listeners(pbxes: list[Pbx], stop: asyncio.Event, **kwargs: Any) -> None:
    """Run one listener per PBX until `stop` is set."""
    listeners = [PbxListener(pbx, **kwargs) for pbx in pbxes]
    await asyncio.gather(*(listener.run(stop) for listener in listeners))
