"""The AMI listener of one PBX: connection, event ingest, resync, actions, status, and the lock.

`runami` runs one `PbxListener` per enabled PBX on one asyncio loop; the Celery task
`calls.tasks.run_ami_listener` runs the same thing. A Redis lock per PBX makes a
second instance wait as a standby instead of double-counting calls (`calls.listener_lock`).
"""

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from common.backoff import Backoff
from common.redisconn import async_redis

from .ami import AmiClient, AmiError, AmiEvent
from .ami_service import STATUS_KEY, serve_actions
from .board import call_messages, publish_status
from .listener_lock import ListenerLock
from .models import Call, Pbx
from .tracker import DISCONNECTED_REASON, CallTracker

logger = logging.getLogger(__name__)

LOCK_KEY = "ccbridge:ami:{pbx}:lock"
# When the active listener was last alive, kept without expiry: after a crash or a takeover
# it bounds when the calls that ended unseen ended.
ALIVE_KEY = "ccbridge:ami:{pbx}:alive"
LOCK_TTL = 15.0  # seconds; renewed every ttl / 3 while the listener lives
STATUS_INTERVAL = 2.0
RECONCILE_INTERVAL = 60.0
RECONCILED_REASON = "ended unseen (no live channel at a periodic check)"
# Seconds between retries of a batch while the database is down: full jitter up to 0.5 * 2**n, capped.
DB_RETRY_BASE = 0.5
DB_RETRY_MAX = 10.0
BATCH = 500
DRAIN_TIMEOUT = 30.0  # seconds a stopping listener spends applying what it already received


class _Resync:
    """A queue item: CoreShowChannels was sent (`channels` None) or answered (a list)."""

    __slots__ = ("channels", "lost_at", "reason")

    def __init__(
        self, channels: list[dict[str, str]] | None, lost_at: datetime | None = None, reason: str = ""
    ) -> None:
        self.channels, self.lost_at, self.reason = channels, lost_at, reason


class PbxListener:
    def __init__(
        self,
        pbx: Pbx,
        *,
        redis_url: str | None = None,
        ping_interval: float = 5.0,
        ping_timeout: float = 3.0,
        lock_ttl: float = LOCK_TTL,
        reconcile_interval: float = RECONCILE_INTERVAL,
        reconnect_max: float = 10.0,
    ) -> None:
        self.pbx = pbx
        self.redis_url = redis_url or settings.REDIS_URL
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.lock_ttl = lock_ttl
        self.reconcile_interval = reconcile_interval
        self.reconnect_max = reconnect_max
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.tracker = CallTracker(pbx, self._publish)
        # One thread for the ORM keeps events in order and off the event loop (one per session).
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Board messages waiting for the loop, newest snapshot per call: a burst sends each
        # busy call once per batch, not once per event.
        self._board: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        self._board_ready = asyncio.Event()
        self._touched: dict[int, tuple[Call, str]] = {}  # calls changed by the current batch
        self.board_sent = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._lost_at: datetime | None = None
        self._redis: aioredis.Redis | None = None
        self.client: AmiClient | None = None
        self.events_received = 0
        self.last_event_name = ""
        self.resyncs = 0
        self.active = asyncio.Event()  # set while this instance holds the lock

    def __repr__(self) -> str:
        return f"<PbxListener {self.pbx.name}>"

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set: as the active instance, or as a standby until the lock frees."""
        r = async_redis(self.redis_url)  # the loop's shared client: not closed here
        self._redis = r
        lock = ListenerLock(r, LOCK_KEY.format(pbx=self.pbx.name), self.owner, self.lock_ttl, f"AMI {self.pbx.name}")
        while await lock.acquire(stop):
            logger.info("AMI %s: this instance (%s) is active", self.pbx.name, self.owner)
            self.active.set()
            try:
                await self._run_locked(r, lock, stop)
            finally:
                self.active.clear()
                await lock.release()
            if stop.is_set():
                break
            # Lost the lock, or a part failed: start over as a standby, from the database.
            logger.warning("AMI %s: restarting as a standby", self.pbx.name)
            await _sleep_unless(stop, 1.0)

    async def _run_locked(self, r: aioredis.Redis, lock: ListenerLock, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        # A fresh session each time this instance becomes active: the database is the truth.
        self.tracker = CallTracker(self.pbx, self._publish)
        self._queue = asyncio.Queue()
        self._loop = loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ami-{self.pbx.name}")
        session_over = asyncio.Event()  # stop, or this session failed or lost the lock
        try:
            await self._run_db(self.tracker.load)
            self._lost_at = await self._last_alive(r)
            secret = self.pbx.secret.reveal() if self.pbx.secret else ""
            self.client = AmiClient(
                self.pbx.host,
                self.pbx.port,
                self.pbx.username,
                secret,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                reconnect_max=self.reconnect_max,
                on_event=self._on_event,
                on_connect=self._on_connect,
                on_disconnect=self._on_disconnect,
            )
            await self.client.start()
            tasks = [
                loop.create_task(self._ingest(), name=f"ingest {self.pbx.name}"),
                loop.create_task(lock.keep(session_over), name=f"lock {self.pbx.name}"),
                loop.create_task(self._report_status(session_over), name=f"status {self.pbx.name}"),
                loop.create_task(self._reconcile(session_over), name=f"reconcile {self.pbx.name}"),
                loop.create_task(self._publish_board(session_over), name=f"board {self.pbx.name}"),
                loop.create_task(
                    serve_actions(self.client, self.pbx.name, self.pbx.context, self.redis_url, session_over),
                    name=f"actions {self.pbx.name}",
                ),
            ]
            try:
                waiters = [loop.create_task(stop.wait()), loop.create_task(session_over.wait())]
                done, _ = await asyncio.wait([*waiters, *tasks], return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                for task in done - set(waiters):
                    # A part that ends by itself has failed (or lost the lock): end the session.
                    error = None if task.cancelled() else task.exception()
                    if error is not None or not session_over.is_set():
                        logger.error("AMI %s: %s ended", self.pbx.name, task.get_name(), exc_info=error)
                session_over.set()
            finally:
                await self.client.stop()
                await self._queue.put(None)  # let the ingest loop drain what it has and end
                for task in tasks[1:]:
                    task.cancel()
                # Bounded: while the database is down the ingest would retry forever.
                await asyncio.wait([tasks[0]], timeout=DRAIN_TIMEOUT)
                tasks[0].cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self._flush_board()  # what the last events published
                with contextlib.suppress(Exception):
                    await self._write_status(r, connected=False, listener=False)
        finally:
            with contextlib.suppress(Exception):
                await self._run_db(connections.close_all)  # the thread's own connection
            self._executor.shutdown(wait=True)

    # --- AMI callbacks (on the loop) ---

    def _on_event(self, event: AmiEvent) -> None:
        self.events_received += 1
        self.last_event_name = event.name
        self._queue.put_nowait(event)

    async def _on_connect(self) -> None:
        await self._write_status_quietly()
        await self._snapshot(self._lost_at, DISCONNECTED_REASON)

    async def _on_disconnect(self, reason: str) -> None:
        if reason == "stopped":
            return
        self._lost_at = timezone.now()
        logger.warning("AMI %s: link lost (%s)", self.pbx.name, reason)
        await self._write_status_quietly()

    async def _snapshot(self, lost_at: datetime | None, reason: str) -> bool:
        """Queue a reconciliation with Asterisk's live channels; False if none could be had.

        The "sent" marker goes in the queue before the action, so events that arrive while
        CoreShowChannels is in flight are known to be newer than its answer.
        """
        assert self.client is not None
        for attempt in range(3):
            await self._queue.put(_Resync(None))
            try:
                channels = await self.client.core_show_channels()
            except AmiError as exc:
                logger.warning(
                    "AMI %s: CoreShowChannels failed (attempt %d): %s", self.pbx.name, attempt + 1, exc
                )
                if not self.client.connected:
                    return False  # the next connect reconciles
                await asyncio.sleep(1.0)
                continue
            await self._queue.put(_Resync(channels, lost_at, reason))
            return True
        return False

    async def _reconcile(self, stop: asyncio.Event) -> None:
        """Reconcile now and then while connected, so a lost Hangup can't leave a call open."""
        while not stop.is_set():
            await _sleep_unless(stop, self.reconcile_interval)
            if stop.is_set():
                return
            if self.client is not None and self.client.connected:
                await self._snapshot(timezone.now(), RECONCILED_REASON)

    # --- ingest (events and resyncs, in order, on the ORM thread) ---

    async def _ingest(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                break
            batch = [item]
            while not self._queue.empty() and len(batch) < BATCH:
                nxt = self._queue.get_nowait()
                if nxt is None:
                    self._queue.put_nowait(None)
                    break
                batch.append(nxt)
            await self._apply_retrying(batch)

    async def _apply_retrying(self, batch: list[Any]) -> None:
        """Apply a batch; while the database is down, wait and apply it again, whole."""
        backoff = Backoff(DB_RETRY_BASE, DB_RETRY_MAX)
        while True:
            try:
                await self._run_db(self._apply, batch)
                return
            except DatabaseError as exc:
                delay = backoff.next()
                logger.error(
                    "AMI %s: database unavailable (%s); retrying in %.1fs", self.pbx.name, exc, delay
                )
            await asyncio.sleep(delay)
            try:
                # The batch was rolled back: the index must forget it too.
                await self._run_db(self.tracker.load)
            except DatabaseError:
                continue

    def _apply(self, batch: list[Any]) -> None:
        # One transaction per batch (each event a savepoint inside it): a burst costs one
        # commit per batch, not one per event. An outage rolls the whole batch back.
        self._touched.clear()
        with transaction.atomic(), self.tracker.deferred_events():
            for item in batch:
                try:
                    if isinstance(item, _Resync):
                        if item.channels is None:
                            self.tracker.begin_resync()
                        else:
                            self.tracker.resync(item.channels, lost_at=item.lost_at, reason=item.reason)
                            self.resyncs += 1
                    else:
                        self.tracker.handle(item)
                except DatabaseError:
                    raise
                except Exception:  # a bug in one resync must not stop the ingest
                    logger.exception("AMI %s: could not apply %r", self.pbx.name, item)
        self._post_board()  # committed: the boards may now read what they are told

    async def _run_db(self, fn: Any, *args: Any) -> Any:
        assert self._executor is not None, "only while active"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_thread(fn, *args))

    @staticmethod
    def _in_thread(fn: Any, *args: Any) -> Any:
        def run() -> Any:
            close_old_connections()  # a long-lived thread must not keep a dead DB connection
            return fn(*args)

        return run

    # --- the live board ---

    def _publish(self, call: Call, kind: str) -> None:
        """Note that a call changed (ORM thread); `_post_board` sends it after the commit."""
        previous = self._touched.get(call.pk)
        # The same Call instance carries every change; only "end" must survive later notes.
        self._touched[call.pk] = (call, "end" if previous and previous[1] == "end" else kind)

    def _post_board(self) -> None:
        """Snapshot each call the batch touched, once, and hand the messages to the loop."""
        touched, self._touched = self._touched, {}
        loop = self._loop
        if loop is None or not touched:
            return
        messages = {}
        for pk, (call, kind) in touched.items():
            try:
                messages[pk] = call_messages(call, kind)
            except Exception:  # the board is best-effort: the CDR is stored
                logger.warning("AMI %s: no board snapshot of call %s", self.pbx.name, pk, exc_info=True)

        def post() -> None:
            self._board.update(messages)
            self._board_ready.set()

        loop.call_soon_threadsafe(post)

    async def _publish_board(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _sleep_unless(self._board_ready, 1.0)
            await self._flush_board()

    async def _flush_board(self) -> None:
        self._board_ready.clear()
        pending, self._board = self._board, {}
        layer = get_channel_layer()
        if layer is None or not pending:
            return
        failed = 0
        for messages in pending.values():
            for group, message in messages:
                try:
                    await layer.group_send(group, message)
                    self.board_sent += 1
                except Exception:  # the board is best-effort: the CDR is already stored
                    failed += 1
        if failed:
            logger.warning("AMI %s: %d board messages could not be sent", self.pbx.name, failed)

    # --- status ---

    async def _last_alive(self, r: aioredis.Redis) -> datetime | None:
        try:
            raw = await r.get(ALIVE_KEY.format(pbx=self.pbx.name))
            return datetime.fromtimestamp(float(raw), tz=UTC) if raw else None
        except (RedisError, ValueError):
            return None

    def status(self, connected: bool | None = None, listener: bool = True) -> dict[str, Any]:
        client = self.client
        return {
            "pbx": self.pbx.name,
            "listener": listener,
            "owner": self.owner,
            "connected": client.connected if connected is None and client else bool(connected),
            "latency_ms": client.latency_ms if client else None,
            "last_event_at": client.last_event_at if client else None,
            "last_event": self.last_event_name,
            "events": self.events_received,
            "events_handled": self.tracker.events_handled,
            "events_skipped": self.tracker.events_skipped,
            "resyncs": self.resyncs,
            "board_sent": self.board_sent,
            "last_error": client.last_error if client else None,
            "at": time.time(),
        }

    async def _write_status(
        self, r: aioredis.Redis, connected: bool | None = None, listener: bool = True
    ) -> None:
        status = self.status(connected, listener)
        await r.set(STATUS_KEY.format(pbx=self.pbx.name), json.dumps(status), ex=int(STATUS_INTERVAL * 5))
        await r.set(ALIVE_KEY.format(pbx=self.pbx.name), str(status["at"]))
        await publish_status(status)

    async def _write_status_quietly(self) -> None:
        if self._redis is None:
            return
        try:
            await self._write_status(self._redis)
        except Exception:
            logger.warning("AMI %s: could not write the status", self.pbx.name, exc_info=True)

    async def _report_status(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._write_status_quietly()
            await _sleep_unless(stop, STATUS_INTERVAL)


async def _sleep_unless(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def run_listeners(pbxes: list[Pbx], stop: asyncio.Event, **kwargs: Any) -> None:
    """Run one listener per PBX until `stop` is set."""
    listeners = [PbxListener(pbx, **kwargs) for pbx in pbxes]
    await asyncio.gather(*(listener.run(stop) for listener in listeners))
