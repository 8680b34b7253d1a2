"""Benchmark: AMI events/s through a PbxListener into the database and the live board, and board latency.

    .venv/bin/python bench/ami_ingest.py --copies 10 --repeat 3
    DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/ccbridge_bench .venv/bin/python bench/ami_ingest.py
    .venv/bin/python bench/ami_ingest.py --real --repeat 1   # root: calls through the Asterisk lab
    .venv/bin/python bench/ami_ingest.py --record     # root: re-record the stream from the Asterisk lab

Replay (default): a local asyncio server speaks AMI (login, Ping, CoreShowChannels) and, once the
listener has reconciled, writes a recorded Asterisk 22 event stream (bench/data/ami_events.txt,
raw AMI text) `--copies` times with the Uniqueids/Linkedids made unique per copy. Each run has
two phases, each with a fresh PBX, listener and board:

- flood: the stream as fast as the listener reads it. The clock runs from the first byte sent to
  the last event applied by the listener's ORM thread: events/s covers parsing, ordering, the CDR
  writes and the board snapshots sent over the Redis channel layer. Board latency here is mostly
  queueing (the events wait in the socket behind the whole flood).
- paced (`--pace` events/s, 0 skips it): the same stream at a steady rate, written in ticks of at
  most 5 ms. Board latency at this rate is the figure the <= 250 ms p95 target is judged on;
  events/s shows whether the listener kept up.

`--real` places SIPp calls phone to phone through the Asterisk 22 lab (`--rate` calls/s for
`--seconds`) and runs the listener against the lab's AMI.

Board latency: a real board, a WebSocket to /ws/board/ on a daphne process (a superuser's session
cookie; the same database and Redis channel layer), in a process of its own (`--board layer`
measures at a channel-layer group member in this process instead). For each call message the
board receives, latency is the time from when the oldest event that message is the first to
show was written (replay: when the local server wrote it, or when it was due when paced;
--real: Asterisk's own Timestamp header, manager.conf timestampevents=yes) to when the board
read it. The listener coalesces a busy call's events into one snapshot per batch, so a message
stands for every event of its call since the previous message; its oldest event waited longest.

With no DATABASE_URL it uses a temporary SQLite file; REDIS_URL must reach a Redis (the board's
channel layer and the listener's lock: give the benchmark a database number of its own).
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import repeat, report  # noqa: E402
from export_csv import setup_django  # noqa: E402

DATA = ROOT / "bench" / "data" / "ami_events.txt"
SELF = Path(__file__).resolve()
EOM = b"\r\n\r\n"
# Headers that carry a channel or bridge id: rewritten per copy so each copy is new calls.
_ID_LINE = re.compile(rb"^(\w*(?:Uniqueid|Linkedid)): ([^\r\n]+)", re.MULTILINE)
SEQ_HEADER = "BenchSeq"  # added to each replayed event: which write it came in
CHUNK = 1 << 16  # bytes per write when flooding
TICK = 0.005  # seconds: the paced sender's longest pause between writes
SETTLE = 5.0  # seconds the board gets to receive the last messages after the listener stops


# --- the recorded stream ----------------------------------------------------------------------------


def load_events(path: Path = DATA) -> list[bytes]:
    """Return the recorded events, each a raw AMI message without its blank line."""
    raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return [m.strip(b"\r\n") for m in raw.split(EOM) if m.strip().startswith(b"Event:")]


def stream(events: list[bytes], copies: int) -> list[bytes]:
    """Return the events to send, each ending in its blank line: the recording, `copies` times.

    Each carries a BenchSeq header (its index), so the listener side can tell when it was written.
    """
    parts = []
    for copy in range(copies):
        suffix = f"-{copy}".encode()
        for message in events:
            unique = _ID_LINE.sub(lambda m, s=suffix: m.group(1) + b": " + m.group(2) + s, message)
            parts.append(unique + f"\r\n{SEQ_HEADER}: {len(parts)}".encode() + EOM)
    return parts


# --- a small AMI server -----------------------------------------------------------------------------


class FakeAmi:
    """Answer Login, Ping and CoreShowChannels; send `events` after the first CoreShowChannels.

    `pace` 0 writes them as fast as the reader takes them; otherwise `pace` events/s. `written[i]`
    is when event i was written (wall clock), or when it was due if the loop was late for it: a
    real PBX would have put it in the socket then.
    """

    def __init__(self, events: list[bytes], pace: float = 0.0) -> None:
        self.events = events
        self.pace = pace
        self.written = [math.nan] * len(events)
        self.sent_at: float | None = None  # perf_counter at the first write
        self.done_sending = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def origin(self, event: Mapping[str, str]) -> float:
        """When the server wrote this event (the listener's ORM thread asks)."""
        return self.written[int(event[SEQ_HEADER])]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while True:
                raw = await reader.readuntil(EOM)
                headers = dict(
                    line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line
                )
                action, action_id = headers.get("Action", "").lower(), headers.get("ActionID", "")
                if action == "login":
                    writer.write(_msg(Response="Success", ActionID=action_id, Message="Authentication accepted"))
                elif action == "ping":
                    writer.write(_msg(Response="Success", ActionID=action_id, Ping="Pong", Timestamp=str(time.time())))
                elif action == "coreshowchannels":
                    writer.write(
                        _msg(Response="Success", ActionID=action_id, EventList="start", Message="Channels follow")
                        + _msg(Event="CoreShowChannelsComplete", ActionID=action_id, EventList="Complete", ListItems="0")  # noqa: E501
                    )
                    if self.sent_at is None:
                        self.sent_at = time.perf_counter()
                        asyncio.get_running_loop().create_task(self._send(writer))
                elif action == "logoff":
                    writer.write(_msg(Response="Goodbye", ActionID=action_id, Message="Thanks for all the fish."))
                    await writer.drain()
                    break
                else:
                    writer.write(_msg(Response="Error", ActionID=action_id, Message="Invalid/unknown command"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        events, n = self.events, len(self.events)
        self.sent_at = time.perf_counter()
        i = 0
        if self.pace <= 0:
            while i < n:
                j, size = i, 0
                while j < n and size < CHUNK:
                    size += len(events[j])
                    j += 1
                self.written[i:j] = [time.time()] * (j - i)
                writer.write(b"".join(events[i:j]))
                await writer.drain()
                i = j
        else:
            start = time.time()
            while i < n:
                j = min(n, int((time.time() - start) * self.pace) + 1)
                if j > i:
                    self.written[i:j] = [start + k / self.pace for k in range(i, j)]
                    writer.write(b"".join(events[i:j]))
                    await writer.drain()
                    i = j
                await asyncio.sleep(min(TICK, max(0.0, start + i / self.pace - time.time())))
        self.done_sending.set()


def _msg(**headers: str) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n"


# --- a listener that notes which event each board message first shows ---------------------------------


def _listener_class() -> type:
    from calls.listener import PbxListener

    class TimedListener(PbxListener):
        """A PbxListener that keeps, per board message, the time of the oldest event it first shows.

        Which batch a message belongs to follows from times alone: the ORM thread notes each batch's
        oldest event per call just before `_post_board` takes the snapshots (whose `ts` are later),
        so at flush time every note no later than a message's `ts` is covered by that message
        (older batches' messages for the call were replaced by it unsent, or were flushed already).
        """

        def __init__(self, pbx: Any, origin: Callable[[Mapping[str, str]], float], **kwargs: Any) -> None:
            super().__init__(pbx, **kwargs)
            self.origin = origin
            self.shown: dict[tuple[int, float], float] = {}  # (call id, snapshot ts) -> origin
            self.count_from = 0.0  # events older than this are not counted (--real: before the calls)
            self.counted = 0
            self.first_origin = math.inf
            self.last_applied = 0.0
            self._event_origin: float | None = None
            self._batch_origin: dict[int, float] = {}  # call id -> oldest event of this batch
            self._notes: dict[int, list[tuple[float, float]]] = {}  # call id -> [(noted at, origin)]
            self._notes_lock = threading.Lock()

        def _apply(self, batch: list[Any]) -> None:
            tracker = self.tracker  # a fresh one per session
            if "handle" not in vars(tracker):
                tracker.handle = self._timed(tracker.handle)
            super()._apply(batch)

        def _timed(self, handle: Callable[[Mapping[str, str]], None]) -> Callable[[Mapping[str, str]], None]:
            def run(event: Mapping[str, str]) -> None:
                origin = self.origin(event)
                self._event_origin = origin
                try:
                    handle(event)
                finally:
                    self._event_origin = None
                    if origin >= self.count_from:
                        self.counted += 1
                        self.first_origin = min(self.first_origin, origin)
                        self.last_applied = time.time()

            return run

        def _publish(self, call: Any, kind: str) -> None:
            super()._publish(call, kind)
            if self._event_origin is not None:
                self._batch_origin.setdefault(call.pk, self._event_origin)

        def _post_board(self) -> None:
            batch, self._batch_origin = self._batch_origin, {}
            noted = time.time()  # before any snapshot of this batch, after every one of the last
            with self._notes_lock:
                for pk, origin in batch.items():
                    self._notes.setdefault(pk, []).append((noted, origin))
            super()._post_board()

        async def _flush_board(self) -> None:
            # No await before super() swaps the pending messages: these are the ones it sends.
            with self._notes_lock:
                for pk, messages in self._board.items():
                    ts = messages[0][1]["call"]["ts"]
                    notes = self._notes.get(pk, [])
                    covered = [origin for noted, origin in notes if noted <= ts]
                    if covered:
                        self.shown[(pk, ts)] = min(covered)
                        self._notes[pk] = [note for note in notes if note[0] > ts]
            await super()._flush_board()

    return TimedListener


# --- boards ------------------------------------------------------------------------------------------


class LayerBoard:
    """A board inside this process: a channel-layer channel in the superusers' group."""

    async def start(self) -> None:
        from channels.layers import get_channel_layer

        from calls.board import ALL_GROUP

        self.group = ALL_GROUP
        self.layer = get_channel_layer()
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        self.received: list[tuple[float, int, float]] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                message = await asyncio.wait_for(self.layer.receive(self.channel), 0.5)
            except TimeoutError:
                continue
            now = time.time()
            if message.get("type") == "call.update":
                self.received.append((now, message["call"]["id"], message["call"]["ts"]))

    async def count(self) -> int:
        return len(self.received)

    async def stop(self) -> list[tuple[float, int, float]]:
        self._stop.set()
        await self._task
        await self.layer.group_discard(self.group, self.channel)
        return self.received


class WsBoard:
    """A real board: a process of its own holding a WebSocket to /ws/board/ (see `board_client`)."""

    def __init__(self, ws_url: str, cookie: str, workdir: Path, limit: float) -> None:
        self.ws_url, self.cookie, self.limit = ws_url, cookie, limit
        self.out = workdir / f"board-{uuid.uuid4().hex[:8]}.json"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SELF), "--board-client", self.ws_url,
            "--cookie", self.cookie, "--out", str(self.out), "--timeout", str(self.limit),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            await self._end()
            raise RuntimeError(f"the board client did not connect to {self.ws_url}: {line!r}")

    async def count(self) -> int:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"count\n")
        await self.proc.stdin.drain()
        return int(await asyncio.wait_for(self.proc.stdout.readline(), 10))

    async def stop(self) -> list[tuple[float, int, float]]:
        await self._end()
        data = await asyncio.to_thread(self.out.read_text)
        return [(t, pk, ts) for t, pk, ts in json.loads(data)]

    async def _end(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def board_client(url: str, cookie: str, out: Path, limit: float) -> None:
    """The board process: connect, print "ready" after the snapshot, note (read at, call id, ts) per
    call message; on "count" print how many; on end of input (or after `limit` s) write them to `out`."""
    import aiohttp

    origin = "http://" + url.split("://", 1)[1].split("/", 1)[0]
    received: list[tuple[float, int, float]] = []
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            now = time.time()  # before parsing: the JSON is the board's work, not the wait
            if message.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                if data.get("type") == "call":
                    received.append((now, data["call"]["id"], data["call"]["ts"]))

    headers = {"Cookie": f"sessionid={cookie}", "Origin": origin}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        hello = await asyncio.wait_for(ws.receive_json(), 30)
        if hello.get("type") != "snapshot":
            raise RuntimeError(f"expected the board's snapshot, got {hello!r}")
        print("ready", flush=True)
        reading = asyncio.create_task(read(ws))
        deadline = loop.time() + limit
        while True:
            try:
                line = await asyncio.wait_for(commands.readline(), max(0.1, deadline - loop.time()))
            except TimeoutError:
                break
            if line.strip() == b"count":
                print(len(received), flush=True)
            elif not line or line.strip() == b"stop":
                break
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    await asyncio.to_thread(out.write_text, json.dumps(received))


class Daphne:
    """The web role (daphne) serving /ws/board/ from this benchmark's database and Redis."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_tcp_port()
        self.log_path = workdir / "daphne.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/board/"

    def start(self) -> None:
        env = {**os.environ, "BRIDGE_VAR_DIR": str(self.workdir / "var"), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                 "bridgeproject.asgi:application"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        from tests.lab.serving import wait_until_serving

        wait_until_serving(f"http://127.0.0.1:{self.port}/admin/login/", self.proc, 60, self.log_tail)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def superuser_session() -> str:
    """A superuser logged in in the benchmark's database; return the session cookie's value."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    user_model = get_user_model()
    user = user_model.objects.filter(username="bench-board").first()
    if user is None:
        user = user_model.objects.create_superuser("bench-board", password=uuid.uuid4().hex)
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


# --- figures ------------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def latencies_ms(received: list[tuple[float, int, float]], shown: dict[tuple[int, float], float]) -> list[float]:
    out = []
    for at, pk, ts in received:
        origin = shown.get((pk, ts))
        if origin is not None and not math.isnan(origin):
            out.append((at - origin) * 1000)
    return out


def board_figures(prefix: str, received: list[tuple[float, int, float]], listener: Any) -> dict[str, float]:
    lat = latencies_ms(received, listener.shown)
    return {
        f"{prefix}board_sent": listener.board_sent,
        f"{prefix}board_received": len(received),
        f"{prefix}board_measured": len(lat),
        f"{prefix}board_p50_ms": percentile(lat, 50),
        f"{prefix}board_p95_ms": percentile(lat, 95),
        f"{prefix}board_p99_ms": percentile(lat, 99),
        f"{prefix}board_max_ms": max(lat, default=math.nan),
    }


async def _settle_board(board: Any, sent: int) -> None:
    """Give the board up to SETTLE s to read what the listener sent (a few may be lost)."""
    deadline = time.monotonic() + SETTLE
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = await board.count()
        if count >= sent:
            return
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since > 1.0:
            return  # nothing more for a second: the rest was dropped
        await asyncio.sleep(0.05)


# --- one replay phase ------------------------------------------------------------------------------------


async def replay_once(
    events: list[bytes], pace: float, make_board: Callable[[], Any], limit: float
) -> dict[str, float]:
    """Replay `events` into a fresh PBX's listener (flood if `pace` is 0); return the figures."""
    from calls.models import Call, CallEvent, CallLeg, Pbx

    total = len(events)
    server = FakeAmi(events, pace)
    port = await server.start()
    pbx = await asyncio.to_thread(
        Pbx.objects.create, name=f"bench-{uuid.uuid4().hex[:8]}", port=port, username="bench", secret="bench"
    )
    stop = asyncio.Event()
    listener = _listener_class()(pbx, server.origin, ping_interval=60, ping_timeout=30, reconcile_interval=3600)
    board = make_board()
    await board.start()  # connected before the listener asks for (and so starts) the stream
    run = asyncio.create_task(listener.run(stop))
    received: list[tuple[float, int, float]] = []
    try:
        deadline = time.monotonic() + limit
        while listener.tracker.events_seen < total:
            if time.monotonic() > deadline or run.done():
                raise RuntimeError(f"only {listener.tracker.events_seen} of {total} events applied after {limit:.0f}s")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - (server.sent_at or 0)
    finally:
        stop.set()
        await run  # its last act sends the last board messages
        try:
            await _settle_board(board, listener.board_sent)
        finally:
            received = await board.stop()
            await server.close()
    calls = await asyncio.to_thread(Call.objects.filter(pbx=pbx).count)
    open_calls = await asyncio.to_thread(Call.objects.filter(pbx=pbx).live().count)
    legs = await asyncio.to_thread(CallLeg.objects.filter(call__pbx=pbx).count)
    rows = await asyncio.to_thread(CallEvent.objects.filter(call__pbx=pbx).count)
    tracker = listener.tracker
    return {
        "events": total,
        "seconds": elapsed,
        "events_per_s": total / elapsed,
        "tracked_events_per_s": tracker.events_handled / elapsed,
        "calls_per_s": calls / elapsed,
        "calls": calls,
        "open_calls": open_calls,
        "db_rows": calls + legs + rows,
        "skipped": tracker.events_skipped,
        **board_figures("", received, listener),
    }


def replay_run(events: list[bytes], pace: float, make_board: Callable[[], Any], limit: float) -> dict[str, float]:
    """One run: the flood phase, then (unless `pace` is 0) the paced phase."""
    figures = asyncio.run(replay_once(events, 0.0, make_board, limit))
    if pace > 0:
        paced = asyncio.run(replay_once(events, pace, make_board, limit))
        figures["paced_events_per_s"] = paced["events_per_s"]
        figures["paced_open_calls"] = paced["open_calls"]
        figures.update({f"paced_{key}": value for key, value in paced.items() if key.startswith("board_")})
    return figures


# --- one run on the real Asterisk ---------------------------------------------------------------------------


def _asterisk_time(event: Mapping[str, str]) -> float:
    """When Asterisk raised the event (manager.conf timestampevents=yes, as the lab sets)."""
    stamp = event.get("Timestamp")
    return float(stamp) if stamp else time.time()


def place_calls(lab: Any, calls: int, rate: float, hold_ms: int, limit: float) -> str:
    """SIPp: 1001 calls 1002 `calls` times at `rate` calls/s; 1002 answers. Return SIPp's complaint, if any."""
    from tests.lab.sipp import Sipp

    with Sipp(lab.host, lab.ports.sip, lab.phone_password) as sipp:
        callee = sipp.answer_as("1002", ring_ms=300, calls=calls, timeout=limit)
        caller = sipp.call("1001", "1002", hold_ms=hold_ms, calls=calls, rate=rate, timeout=limit)
        result = caller.wait(limit + 10)
        callee_result = callee.wait(30)
    problems = [r.describe()[-600:] for r in (result, callee_result) if not r.ok]
    return "\n".join(problems)


async def real_once(lab: Any, make_board: Callable[[], Any], args: argparse.Namespace) -> dict[str, float]:
    from calls.models import Call, Pbx

    pbx = await asyncio.to_thread(
        Pbx.objects.create, name=f"bench-{uuid.uuid4().hex[:8]}", host=lab.host, port=lab.ports.ami,
        username=lab.ami_username, secret=lab.ami_secret,
    )
    stop = asyncio.Event()
    listener = _listener_class()(pbx, _asterisk_time, ping_interval=5, ping_timeout=3, reconcile_interval=3600)
    board = make_board()
    await board.start()
    run = asyncio.create_task(listener.run(stop))
    received: list[tuple[float, int, float]] = []
    calls = max(1, round(args.rate * args.seconds))
    limit = args.seconds + 60
    try:
        deadline = time.monotonic() + 20
        while not (listener.client is not None and listener.client.connected):
            if time.monotonic() > deadline or run.done():
                raise RuntimeError("the listener did not connect to the lab's AMI")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the login's own events and the first reconciliation
        listener.count_from = time.time()
        problems = await asyncio.to_thread(place_calls, lab, calls, args.rate, args.hold_ms, limit)
        if problems:
            print(f"SIPp reported failures:\n{problems}", file=sys.stderr)
        # Done when the listener has closed every call and Asterisk has been quiet for a second.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not run.done():
            if not listener.tracker.calls and time.time() - listener.last_applied > 1.0:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await run
        try:
            await _settle_board(board, listener.board_sent)
        finally:
            received = await board.stop()
    seconds = listener.last_applied - listener.first_origin
    placed = await asyncio.to_thread(Call.objects.filter(pbx=pbx).count)
    answered = await asyncio.to_thread(Call.objects.filter(pbx=pbx, answered_at__isnull=False).count)
    open_calls = await asyncio.to_thread(Call.objects.filter(pbx=pbx).live().count)
    return {
        "events": listener.counted,
        "seconds": seconds,
        "events_per_s": listener.counted / seconds if seconds > 0 else math.nan,
        "tracked_events_per_s": listener.tracker.events_handled / seconds if seconds > 0 else math.nan,
        "calls_placed": calls,
        "calls": placed,
        "answered": answered,
        "open_calls": open_calls,
        "skipped": listener.tracker.events_skipped,
        **board_figures("", received, listener),
    }


def real_runs(args: argparse.Namespace, make_board: Callable[[], Any]) -> dict[str, dict[str, float]]:
    """Start the lab (or attach to a running one: --attach SIP_PORT:AMI_PORT, secret in LAB_AMI_SECRET)."""
    from tests.lab.asterisk import AsteriskLab, hang_up_everything, prerequisites

    if args.attach:
        sip, ami = (int(p) for p in args.attach.split(":"))
        lab = AsteriskLab(sip_port=sip, ami_port=ami, ami_secret=os.environ["LAB_AMI_SECRET"])
        own = False
    else:
        missing = prerequisites()
        if missing:
            raise SystemExit("the Asterisk lab can't run here: " + "; ".join(missing))
        sip, ami, bridge = (int(p) for p in args.lab_ports.split(","))
        lab = AsteriskLab(sip_port=sip, ami_port=ami, bridge_port=bridge, rtp_ports=(33000, 33999))
        own = True
        print(f"starting the Asterisk lab in {lab.root} (sip {sip}, ami {ami}, bridge {bridge})", flush=True)
        lab.start()
    try:
        def one() -> dict[str, float]:
            if own:  # an attached lab's owner keeps it clean
                hang_up_everything(lab)
            return asyncio.run(real_once(lab, make_board, args))

        return repeat(one, args.repeat)
    finally:
        if own:
            lab.stop()


# --- recording from the lab -----------------------------------------------------------------------------


async def record(path: Path, calls: int) -> None:
    """Record a raw AMI event stream from the Asterisk lab while SIPp places calls (root)."""
    from tests.lab.asterisk import AsteriskLab
    from tests.lab.sipp import Sipp, free_tcp_port, free_udp_port

    lab = AsteriskLab(sip_port=free_udp_port(), ami_port=free_tcp_port(), bridge_port=free_udp_port())
    await asyncio.to_thread(lab.start)
    try:
        reader, writer = await asyncio.open_connection(lab.host, lab.ports.ami)
        await reader.readline()  # the banner
        writer.write(_msg(Action="Login", Username=lab.ami_username, Secret=lab.ami_secret, Events="on"))
        await writer.drain()
        login = await reader.readuntil(EOM)
        if b"Success" not in login:
            raise RuntimeError(f"AMI login failed: {login!r}")
        chunks: list[bytes] = []

        async def capture() -> None:
            while data := await reader.read(65536):
                chunks.append(data)

        task = asyncio.create_task(capture())
        with Sipp(lab.host, lab.ports.sip, lab.phone_password) as sipp:

            def place_calls() -> None:
                # Answered calls at a steady rate, then a busy one, a cancelled one and a mapped one.
                callee = sipp.answer_as("1002", ring_ms=300, calls=calls, timeout=120)
                sipp.call("1001", "1002", hold_ms=1000, calls=calls, rate=5, timeout=120).wait(150)
                callee.wait(30)
                busy = sipp.answer_as("1003", scenario="uas_busy")
                sipp.call("1001", "1003", hold_ms=500).wait(30)
                busy.kill()
                ringing = sipp.answer_as("1003", scenario="uas_noanswer")
                sipp.call("1001", "1003", hold_ms=1000, scenario="uac_cancel").wait(30)
                ringing.wait(30)
                desk = sipp.answer_as("vendas", ring_ms=300)
                sipp.call("1001", "vendas", hold_ms=1000).wait(30)
                desk.wait(30)

            await asyncio.to_thread(place_calls)
        await asyncio.sleep(2)  # the last Hangups and CDR events
        writer.write(_msg(Action="Logoff"))
        await writer.drain()
        await asyncio.wait_for(task, 5)
    finally:
        await asyncio.to_thread(lab.stop)
    # Only events: no action responses (nothing of the login is in the recording).
    messages = [m for m in b"".join(chunks).split(EOM) if m.startswith(b"Event:")]
    await asyncio.to_thread(_write, path, EOM.join(messages) + EOM)
    print(f"recorded {len(messages)} events into {path}")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --- main --------------------------------------------------------------------------------------------------

UNITS = {
    "events": "n", "seconds": "s", "events_per_s": "ev/s", "tracked_events_per_s": "ev/s",
    "calls_per_s": "calls/s", "calls_placed": "n", "calls": "n", "answered": "n", "open_calls": "n",
    "db_rows": "n", "skipped": "n", "paced_events_per_s": "ev/s", "paced_open_calls": "n",
}


def _unit(key: str) -> str:
    if key in UNITS:
        return UNITS[key]
    return "ms" if key.endswith("_ms") else "msgs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="record bench/data/ami_events.txt from the lab")
    parser.add_argument("--record-calls", type=int, default=40)
    parser.add_argument("--copies", type=int, default=10, help="replay the recording this many times per phase")
    parser.add_argument("--pace", type=float, default=2000.0,
                        help="events/s of the paced phase (the latency target's rate); 0: flood only")
    parser.add_argument("--board", choices=["ws", "layer"], default="ws",
                        help="ws: a WebSocket board on daphne; layer: a channel-layer member in this process")
    parser.add_argument("--real", action="store_true", help="calls through the Asterisk lab instead (root)")
    parser.add_argument("--rate", type=float, default=10.0, help="--real: calls per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="--real: seconds of calls")
    parser.add_argument("--hold-ms", type=int, default=2000, help="--real: each call's talk time")
    parser.add_argument("--lab-ports", default="5160,5138,5170", help="--real: SIP,AMI,bridge ports of the lab")
    parser.add_argument("--attach", default="", help="--real: SIP_PORT:AMI_PORT of a running lab (LAB_AMI_SECRET)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--name", default="")
    parser.add_argument("--board-client", metavar="WS_URL", help=argparse.SUPPRESS)
    parser.add_argument("--cookie", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.board_client:
        asyncio.run(board_client(args.board_client, args.cookie, Path(args.out), args.timeout))
        return 0
    if args.record:
        asyncio.run(record(DATA, args.record_calls))
        return 0
    name = args.name or ("ami_ingest_real" if args.real else "ami_ingest")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "false")  # as in production: no SQL kept per query
    # The same keys in this process and in daphne: the session cookie and the Pbx secret.
    os.environ.setdefault("SECRET_KEY", uuid.uuid4().hex + uuid.uuid4().hex)
    if not os.environ.get("FIELD_ENCRYPTION_KEYS"):
        from cryptography.fernet import Fernet

        os.environ["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    with tempfile.TemporaryDirectory() as tmp:
        vendor = setup_django(tmp)  # sets DATABASE_URL (a SQLite file here) for daphne too
        from django.conf import settings

        daphne: Daphne | None = None
        try:
            if args.board == "ws":
                daphne = Daphne(Path(tmp))
                daphne.start()
                cookie = superuser_session()
                ws_url = daphne.ws_url

                def make_board() -> Any:
                    return WsBoard(ws_url, cookie, Path(tmp), args.timeout + 60)
            else:
                make_board = LayerBoard
            board_where = "WebSocket via daphne" if args.board == "ws" else "channel-layer group member"
            meta: dict[str, Any] = {"vendor": vendor, "board": board_where, "redis": settings.REDIS_URL}
            if args.real:
                print(f"real Asterisk: {args.rate:g} calls/s for {args.seconds:g} s on {vendor}", flush=True)
                figures = real_runs(args, make_board)
                meta.update(source="Asterisk lab", rate=args.rate, seconds=args.seconds, hold_ms=args.hold_ms)
            else:
                events = stream(load_events(), args.copies)
                size = sum(map(len, events)) / 2**20
                paced = f", then paced at {args.pace:g} ev/s" if args.pace > 0 else ""
                print(f"{len(events)} events ({size:.1f} MiB) per phase on {vendor}: flood{paced}", flush=True)
                figures = repeat(lambda: replay_run(events, args.pace, make_board, args.timeout), args.repeat)
                meta.update(events=len(events), copies=args.copies, pace=args.pace, source=DATA.name)
        finally:
            if daphne is not None:
                daphne.stop()
        report(name, figures, meta, {key: _unit(key) for key in figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
