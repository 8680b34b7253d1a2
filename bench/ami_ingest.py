"""Benchmark: AMI events/s through a PbxListener into the database and the live board.

    .venv/bin/python bench/ami_ingest.py --copies 10 --repeat 3
    DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/ccbridge_bench .venv/bin/python bench/ami_ingest.py
    .venv/bin/python bench/ami_ingest.py --record     # root: re-record the stream from the Asterisk lab

A local asyncio server speaks AMI (login, Ping, CoreShowChannels) and, once the listener has
reconciled, writes a recorded Asterisk 22 event stream (bench/data/ami_events.txt, raw AMI
text) at full speed, `--copies` times with the Uniqueids/Linkedids made unique per copy. The
clock runs from the first byte sent to the last event applied by the listener's ORM thread:
the figure covers parsing, ordering, the CDR writes and the board snapshots sent over the
Redis channel layer (one board subscribed to the superusers' group counts what arrives).
With no DATABASE_URL it uses a temporary SQLite file; REDIS_URL must reach a Redis.
"""

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import repeat, report  # noqa: E402
from export_csv import setup_django  # noqa: E402

DATA = ROOT / "bench" / "data" / "ami_events.txt"
EOM = b"\r\n\r\n"
# Headers that carry a channel or bridge id: rewritten per copy so each copy is new calls.
_ID_LINE = re.compile(rb"^(\w*(?:Uniqueid|Linkedid)): ([^\r\n]+)", re.MULTILINE)


# --- the recorded stream ----------------------------------------------------------------------------


def load_events(path: Path = DATA) -> list[bytes]:
    """Return the recorded events, each a raw AMI message without its blank line."""
    raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return [m.strip(b"\r\n") for m in raw.split(EOM) if m.strip().startswith(b"Event:")]


def stream(events: list[bytes], copies: int) -> tuple[bytes, int]:
    """Return the bytes to send and their event count: the recording, `copies` times."""
    parts = []
    for copy in range(copies):
        suffix = f"-{copy}".encode()
        for message in events:
            parts.append(_ID_LINE.sub(lambda m, s=suffix: m.group(1) + b": " + m.group(2) + s, message))
    return EOM.join(parts) + EOM, len(parts)


# --- a small AMI server -----------------------------------------------------------------------------


class FakeAmi:
    """Answer Login, Ping and CoreShowChannels; send `payload` after the first CoreShowChannels."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.sent_at: float | None = None
        self.done_sending = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

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
        self.sent_at = time.perf_counter()
        view = memoryview(self.payload)
        for start in range(0, len(view), 1 << 16):
            writer.write(view[start : start + (1 << 16)])
            await writer.drain()
        self.done_sending.set()


def _msg(**headers: str) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n"


# --- one run ---------------------------------------------------------------------------------------------


async def _drain_board(layer: Any, channel: str, counter: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(layer.receive(channel), 0.5)
            counter[0] += 1
        except TimeoutError:
            continue


async def ingest_once(payload: bytes, total: int, limit: float) -> dict[str, float]:
    from channels.layers import get_channel_layer

    from calls.board import ALL_GROUP
    from calls.listener import PbxListener
    from calls.models import Call, CallEvent, CallLeg, Pbx

    server = FakeAmi(payload)
    port = await server.start()
    pbx = await asyncio.to_thread(
        Pbx.objects.create, name=f"bench-{uuid.uuid4().hex[:8]}", port=port, username="bench", secret="bench"
    )
    # A superuser's board: it receives every call update.
    layer = get_channel_layer()
    board = await layer.new_channel()
    await layer.group_add(ALL_GROUP, board)
    received = [0]
    stop, board_stop = asyncio.Event(), asyncio.Event()
    drain = asyncio.create_task(_drain_board(layer, board, received, board_stop))
    listener = PbxListener(pbx, ping_interval=60, ping_timeout=30, reconcile_interval=3600)
    run = asyncio.create_task(listener.run(stop))
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
        for _ in range(40):
            if received[0] >= listener.board_sent:
                break
            await asyncio.sleep(0.05)
        board_stop.set()
        await drain
        await layer.group_discard(ALL_GROUP, board)
        await server.close()
    calls = await asyncio.to_thread(Call.objects.filter(pbx=pbx).count)
    open_calls = await asyncio.to_thread(Call.objects.filter(pbx=pbx).live().count)
    legs = await asyncio.to_thread(CallLeg.objects.filter(call__pbx=pbx).count)
    events = await asyncio.to_thread(CallEvent.objects.filter(call__pbx=pbx).count)
    tracker = listener.tracker
    return {
        "events": total,
        "seconds": elapsed,
        "events_per_s": total / elapsed,
        "tracked_events_per_s": tracker.events_handled / elapsed,
        "calls_per_s": calls / elapsed,
        "calls": calls,
        "open_calls": open_calls,
        "db_rows": calls + legs + events,
        "skipped": tracker.events_skipped,
        "board_sent": listener.board_sent,
        "board_received": received[0],
    }


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="record bench/data/ami_events.txt from the lab")
    parser.add_argument("--record-calls", type=int, default=40)
    parser.add_argument("--copies", type=int, default=10, help="replay the recording this many times per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--name", default="ami_ingest")
    args = parser.parse_args()
    if args.record:
        asyncio.run(record(DATA, args.record_calls))
        return 0
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "false")  # as in production: no SQL kept per query
    with tempfile.TemporaryDirectory() as tmp:
        vendor = setup_django(tmp)
        from django.conf import settings

        if not settings.FIELD_ENCRYPTION_KEYS:  # the Pbx secret is encrypted at rest
            from cryptography.fernet import Fernet

            settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
        payload, total = stream(load_events(), args.copies)
        print(f"{total} events ({len(payload) / 2**20:.1f} MiB) per run on {vendor}")
        figures = repeat(lambda: asyncio.run(ingest_once(payload, total, args.timeout)), args.repeat)
        report(
            args.name,
            figures,
            {"vendor": vendor, "events": total, "copies": args.copies, "source": DATA.name},
            {
                "events": "n",
                "seconds": "s",
                "events_per_s": "ev/s",
                "tracked_events_per_s": "ev/s",
                "calls_per_s": "calls/s",
                "calls": "n",
                "open_calls": "n",
                "db_rows": "n",
                "skipped": "n",
                "board_sent": "msgs",
                "board_received": "msgs",
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
