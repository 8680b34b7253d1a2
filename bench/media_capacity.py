"""Benchmark: how many bridged calls one media process carries, against rtpengine and scaled out.

    .venv/bin/python bench/media_capacity.py            # both modes, ours (1 and 2 workers) and rtpengine
    .venv/bin/python bench/media_capacity.py --mode passthrough --steps 50,100,150 --seconds 5
    .venv/bin/python bench/media_capacity.py --engine ours --workers 1    # no rtpengine, no scale-out

Engines. `ours`: the bridge runs in W spawned bridge processes (`--workers`, default 1 and 2),
each one asyncio loop with its MediaSessions, i.e. what one media worker process carries; worker
k is pinned to CPU k and gets calls k, k+W, ... `rtpengine`: Debian's rtpengine-daemon in
userspace (bench/rtpengine.py), pinned to CPU 0 like our first worker, with --num-threads=1
(`--rtpengine-threads`), each call set up over its ng protocol as phone (RTP/AVP, PCMU) <->
app (UDP/TLS/RTP/SAVPF, ICE, DTLS-SRTP, rtcp-mux); in transcoding it offers the app Opus only
and converts PCMU <-> Opus itself. Figures are keyed `{engine}_{mode}_N{n}_{figure}`, engine
being `ours` (1 worker), `ours_w{W}` or `rtpengine`. At each step the engines take turns, with
the same load process, so that noise from elsewhere falls on them alike.

The load runs in one more process: N phones (UDP sockets sending PCMU every 20 ms, phases spread
over the 20 ms) and N apps (real aiortc peers, ICE + DTLS-SRTP, sending pre-encoded audio so
that the load spends no time encoding). It is pinned to CPU 1 for one worker and for rtpengine.
With 2 workers on a 2-CPU machine it has no CPU of its own and runs unpinned beside them, so
the latency test then also measures the load competing with the bridge. Each step sets N calls
up, lets them sit, then sends for --seconds in both directions and tears them down.

Latency is one-way, phone -> app and app -> phone, measured in the load process with
CLOCK_MONOTONIC (shared by all processes): in passthrough from a send-time probe in the payload
(the payload crosses untouched, through rtpengine too), in transcoding from send-time tables
indexed by the RTP timestamp the bridge writes (one 20 ms packet in, one out; the k-th packet
out is matched with the k-th, or after a codec's buffering the (k+1)-th or (k+2)-th, in). It
includes the app peer's own receive path, so it is an upper bound of what the bridge adds.
`received_*` count packets that arrived, `loss_*` the ones sent and never received.

CPU is user + system time over the sending window, as a fraction of one CPU: our workers'
getrusage (summed over workers: `bridge_cpu_pct`; `busiest_worker_cpu_pct` the largest one),
rtpengine's /proc/<pid>/stat (all its threads), the load's getrusage (`load_cpu_pct`), and
`other_cpu_pct` what the rest of the machine used (/proc/stat) meanwhile. `cpu_per_call_pct` is
bridge CPU / N, `calls_per_cpu` = N / bridge CPU (calls one fully busy CPU would carry at this
cost). `loop_lag_p99_ms` is the worst worker's p99 lateness of a 5 ms timer; `rss_mib` the
bridge's resident memory (summed over workers; rtpengine's own).

A step passes with 0 packets lost both ways and p99 <= 10 ms both ways; each engine stops at its
first failing step (unless --keep-going), and every engine stops when --max-seconds (shared
evenly between the modes) is spent. `{engine}_{mode}_max_calls` is the last passing N.
Ratios, per mode: `max_calls_ratio_ours_to_rtpengine`, `cpu_per_call_pct_ratio_ours_to_rtpengine`
(at the largest N both measured, given by the `_at_calls` figure), `max_calls_ratio_w2_to_w1`
and `calls_per_cpu_ratio_w2_to_w1`: CPU-normalised scaling, about 1 when nothing the workers
share (the kernel's UDP path, memory bandwidth) makes each call dearer with two of them. On two
CPUs the max-calls ratio of 2 workers is bounded by the load sharing their CPUs; the
CPU-normalised one is the figure that shows whether workers scale.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import resource
import struct
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import report, rss_mib, summarise  # noqa: E402

PTIME = 0.02
PROBE = struct.Struct("!IId")  # call, counter, monotonic send time
P99_LIMIT_MS = 10.0
SETUP_BATCH = 10
LOOPBACK = ["127.0.0.1"]
DEFAULT_STEPS = {
    "passthrough": [50, 100, 150, 175, 200, 250, 300, 400],
    "transcode": [20, 40, 50, 60, 70, 80, 100],
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (Linux /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def pin_process(cpu: int | None) -> bool:
    """Pin every thread of this process to `cpu`, or let it run on all CPUs (None)."""
    count = os.cpu_count() or 1
    if count < 2 or not hasattr(os, "sched_setaffinity"):
        return False
    cpus = set(range(count)) if cpu is None else {cpu % count}
    for tid in os.listdir("/proc/self/task"):  # sched_setaffinity(0) would pin one thread only
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass  # the thread ended meanwhile
    return cpu is not None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---------------------------------------------------------------- load process (phones + apps)


class LoadCall:
    """One phone socket and one app peer of the load process."""

    def __init__(self, index: int, mode: str) -> None:
        from aiortc import RTCPeerConnection

        from media.session.hooks import EncodedTrack

        self.index = index
        self.mode = mode
        self.pc = RTCPeerConnection()
        self.track = EncodedTrack(8000 if mode == "passthrough" else 48000)
        self.transport: asyncio.DatagramTransport | None = None
        self.bridge: tuple[str, int] | None = None
        self.phone_seq = 0
        self.phone_ts = 0
        self.phone_sent: list[float] = []  # send time per phone frame
        self.app_sent: list[float] = []
        self.to_app: list[tuple[int, float]] = []  # (index or counter, latency s)
        self.to_phone: list[tuple[int, float]] = []
        self.app_ts0: int | None = None
        self.phone_ts0: int | None = None
        self.measuring = False
        self.opus_pt = 111

    async def open_phone(self) -> int:
        """Bind the phone's socket (once); return its port."""
        if self.transport is None:
            call = self

            class Phone(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple) -> None:
                    call.phone_received(data)

            self.transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                Phone, local_addr=("127.0.0.1", 0))
        return self.transport.get_extra_info("sockname")[1]

    def set_bridge(self, port: int) -> None:
        self.bridge = ("127.0.0.1", port)

    async def open(self, bridge_port: int | None, offer: str) -> tuple[int, str]:
        """Answer the bridge's offer; `bridge_port` None: it comes later (`set_bridge`)."""
        from aiortc import RTCSessionDescription
        from aiortc.sdp import SessionDescription

        from connectycube.ice import apply_host_addresses
        from media.session.fastpath import FastPath
        from media.session.hooks import tap_receiver

        await self.open_phone()
        if bridge_port is not None:
            self.set_bridge(bridge_port)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        self.pc.addTrack(self.track)
        transceiver = self.pc.getTransceivers()[0]
        # The apps relay like the bridge does (media.session.fastpath), so that the load costs
        # no more than what it measures.
        self.fast = FastPath(transceiver.sender, transceiver.receiver, self.app_received)
        tap_receiver(transceiver.receiver, self.fast.feed)
        apply_host_addresses(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.opus_pt = next((c.payloadType for m in SessionDescription.parse(self.pc.localDescription.sdp).media
                             for c in m.rtp.codecs if c.name == "opus"), 111)
        return self.transport.get_extra_info("sockname")[1], self.pc.localDescription.sdp

    # phone side

    def phone_send(self, payload: bytes) -> None:
        now = time.monotonic()
        if self.mode == "passthrough":
            payload = PROBE.pack(self.index, len(self.phone_sent), now) + payload[PROBE.size:]
        self.phone_sent.append(now)
        header = struct.pack("!BBHII", 0x80, 0, self.phone_seq, self.phone_ts, 0x1000 + self.index)
        self.transport.sendto(header + payload, self.bridge)
        self.phone_seq = (self.phone_seq + 1) & 0xFFFF
        self.phone_ts = (self.phone_ts + 160) & 0xFFFFFFFF

    def phone_received(self, data: bytes) -> None:
        if not self.measuring or len(data) < 12 + PROBE.size or data[1] & 0x7F != 0:
            return
        now = time.monotonic()
        if self.mode == "passthrough":
            _, counter, sent = PROBE.unpack_from(data, 12)
            self.to_phone.append((counter, now - sent))
        else:
            ts = struct.unpack_from("!I", data, 4)[0]
            if self.phone_ts0 is None:
                self.phone_ts0 = ts
            self.to_phone.append((((ts - self.phone_ts0) & 0xFFFFFFFF) // 160, now))

    # app side

    def app_send(self, payload: bytes) -> None:
        now = time.monotonic()
        if self.mode == "passthrough":
            payload = PROBE.pack(self.index, len(self.app_sent), now) + payload[PROBE.size:]
            pts = len(self.app_sent) * 160
        else:
            pts = len(self.app_sent) * 960
        self.app_sent.append(now)
        self.fast.send(0 if self.mode == "passthrough" else self.opus_pt, payload, pts)

    def app_received(self, payload_type: int, marker: int, seq: int, timestamp: int, ssrc: int,
                     payload: bytes) -> None:
        if not self.measuring:
            return
        now = time.monotonic()
        if self.mode == "passthrough":
            if len(payload) >= PROBE.size:
                _, counter, sent = PROBE.unpack_from(payload)
                self.to_app.append((counter, now - sent))
        else:
            if self.app_ts0 is None:
                self.app_ts0 = timestamp
            self.to_app.append((((timestamp - self.app_ts0) & 0xFFFFFFFF) // 960, now))

    def results(self) -> dict:
        """Return latencies (s) and received counts per direction."""
        if self.mode == "passthrough":
            to_app = {c: lat for c, lat in self.to_app if c < len(self.phone_sent)}
            to_phone = {c: lat for c, lat in self.to_phone if c < len(self.app_sent)}
            return {"to_app": list(to_app.values()), "to_phone": list(to_phone.values()),
                    "sent_phone": len(self.phone_sent), "sent_app": len(self.app_sent)}
        # Transcoding: align the k-th packet out with the k-th (or, after a resampler's
        # buffering, the (k+shift)-th) packet in.
        # The frames still buffered at the end (`shift` of them) are not lost.
        def align(arrivals, sent):
            best: tuple[list[float], int] = ([], 0)
            for shift in (0, 1, 2):
                lats = [t - sent[k + shift] for k, t in arrivals if k + shift < len(sent)]
                if lats and min(lats) >= -0.001:
                    best = (lats, shift)
            return best

        received_app = dict(self.to_app)
        received_phone = dict(self.to_phone)
        to_app, shift_app = align(sorted(received_app.items()), self.phone_sent)
        to_phone, shift_phone = align(sorted(received_phone.items()), self.app_sent)
        return {"to_app": to_app, "to_phone": to_phone,
                "sent_phone": len(self.phone_sent) - shift_app,
                "sent_app": len(self.app_sent) - shift_phone,
                "received_app": len(received_app), "received_phone": len(received_phone)}

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        await self.pc.close()


def opus_packets(count: int) -> list[bytes]:
    """Pre-encode a tone as 20 ms Opus packets, so that the load's apps never encode."""
    from media.rtp import g711
    from media.session.transcode import PhoneToOpus

    encoder = PhoneToOpus("PCMU")
    t = np.arange(160 * count) / 8000
    pcm = (16000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    out: list[bytes] = []
    for i in range(count):
        out += [bytes(p) for p in encoder.feed(g711.encode("PCMU", pcm[i * 160:(i + 1) * 160]))]
    return out


async def load_send(calls: list[LoadCall], seconds: float, mode: str) -> None:
    """Send from every phone and app every 20 ms, phases spread evenly over the 20 ms."""
    from media.rtp import g711

    t = np.arange(160) / 8000
    pcmu = g711.encode("PCMU", (16000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16))
    app_payloads = [g711.encode("PCMU", (16000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))]
    if mode == "transcode":
        app_payloads = opus_packets(50)
    frames = int(seconds / PTIME)
    n = len(calls)
    start = time.monotonic() + 0.05
    for frame in range(frames):
        for i, call in enumerate(calls):
            due = start + frame * PTIME + i * PTIME / n
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            call.phone_send(pcmu)
            call.app_send(app_payloads[frame % len(app_payloads)])


async def load_main_async(conn) -> None:
    loop = asyncio.get_running_loop()
    calls: list[LoadCall] = []
    while True:
        command, arg = await loop.run_in_executor(None, conn.recv)
        if command == "pin":
            conn.send(pin_process(arg))
        elif command == "phones":
            # rtpengine's offer names the phone's port; its own port for the phone comes later.
            mode, n = arg
            calls = [LoadCall(index, mode) for index in range(n)]
            conn.send([await call.open_phone() for call in calls])
        elif command == "bridges":
            for call, port in zip(calls, arg, strict=True):
                call.set_bridge(port)
            conn.send(True)
        elif command == "wait_connected":
            deadline = time.monotonic() + arg
            while True:
                connected = sum(c.pc.connectionState == "connected" for c in calls)
                if connected == len(calls) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            conn.send(connected)
        elif command == "setup":
            mode, offers = arg
            if [c.index for c in calls] != [index for index, _, _ in offers]:
                calls = [LoadCall(index, mode) for index, _, _ in offers]
            answers = []
            for batch in range(0, len(calls), SETUP_BATCH):
                chunk = list(zip(calls[batch:batch + SETUP_BATCH],
                                 offers[batch:batch + SETUP_BATCH], strict=True))
                answers += await asyncio.gather(*(c.open(port, sdp) for c, (_, port, sdp) in chunk))
            conn.send(answers)
        elif command == "run":
            seconds = arg
            for call in calls:
                call.measuring = True
            cpu0, wall0 = cpu_seconds(), time.monotonic()
            # The load is the measuring instrument: a full collection over its thousands of
            # aiortc objects would stall it for milliseconds and show up as bridge latency.
            gc.disable()
            try:
                await load_send(calls, seconds, calls[0].mode)
                await asyncio.sleep(0.3)  # packets still in flight
            finally:
                gc.enable()
            cpu = (cpu_seconds() - cpu0) / (time.monotonic() - wall0)
            for call in calls:
                call.measuring = False
            conn.send({"calls": [c.results() for c in calls], "load_cpu": cpu})
        elif command == "teardown":
            await asyncio.gather(*(c.close() for c in calls))
            calls = []
            conn.send(True)
        elif command == "quit":
            conn.send(True)
            return


def load_main(conn, cpu: int | None) -> None:
    pin_process(cpu)
    asyncio.run(load_main_async(conn))


# ---------------------------------------------------------------- bridge worker processes (ours)


class LoopLag:
    """Measure how late a 5 ms timer fires: the event loop's scheduling lag."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            self.samples.append(time.monotonic() - before - 0.005)

    async def stop(self) -> list[float]:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.samples


class BridgeWorker:
    """One bridge process's share of a step: its MediaSessions on its one asyncio loop."""

    def __init__(self, ports: tuple[int, int]) -> None:
        self.ports = ports
        self.sessions: list = []
        self.lag = LoopLag()
        self.cpu0 = self.wall0 = 0.0

    async def offers(self, mode: str, indices: list[int]) -> list[tuple[int, int, str]]:
        from media.rtp.socket import PortRange
        from media.session.session import MediaSession, SessionConfig

        config = SessionConfig(rtp_ports=PortRange(*self.ports), host_addresses=LOOPBACK,
                             prefer_opus=mode == "transcode")
        self.sessions = [MediaSession(config) for _ in indices]
        offers = []
        for batch in range(0, len(indices), SETUP_BATCH):
            chunk = self.sessions[batch:batch + SETUP_BATCH]
            locals_ = await asyncio.gather(*(s.prepare_rtp() for s in chunk))
            sdps = await asyncio.gather(*(s.create_offer() for s in chunk))
            offers += [(index, loc.port, sdp) for index, loc, sdp
                       in zip(indices[batch:batch + SETUP_BATCH], locals_, sdps, strict=True)]
        return offers

    async def answers(self, answers: list[tuple[int, str]]) -> None:
        from media.session.session import SessionState
        from sip.sdp import PCMU

        for session, (phone_port, answer) in zip(self.sessions, answers, strict=True):
            await session.set_rtp_remote(("127.0.0.1", phone_port), "sendrecv", PCMU)
            await session.set_answer(answer)
        n = len(self.sessions)
        deadline = time.monotonic() + 30 + n / 5
        while not all(s.state == SessionState.CONNECTED for s in self.sessions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(s.state == SessionState.CONNECTED for s in self.sessions)}"
                                   f" of {n} calls connected")
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self.lag.start()
        self.cpu0, self.wall0 = cpu_seconds(), time.monotonic()

    async def stop(self) -> dict[str, float]:
        cpu_s, wall = cpu_seconds() - self.cpu0, time.monotonic() - self.wall0
        lags = await self.lag.stop()
        return {"cpu_s": cpu_s, "wall_s": wall, "lag_p99": percentile(lags, 99), "rss_mib": rss_mib()}

    async def teardown(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions))
        self.sessions = []


async def bridge_main_async(conn, ports: tuple[int, int]) -> None:
    loop = asyncio.get_running_loop()
    worker = BridgeWorker(ports)
    while True:
        command, arg = await loop.run_in_executor(None, conn.recv)
        try:
            if command == "offers":
                reply = await worker.offers(*arg)
            elif command == "answers":
                reply = await worker.answers(arg)
            elif command == "start":
                reply = worker.start()
            elif command == "stop":
                reply = await worker.stop()
            elif command == "teardown":
                reply = await worker.teardown()
            elif command == "quit":
                conn.send(None)
                return
            else:
                raise ValueError(f"unknown command {command!r}")
        except Exception as exc:
            reply = WorkerError(f"{type(exc).__name__}: {exc}")
        conn.send(reply)


def bridge_main(conn, cpu: int, ports: tuple[int, int]) -> None:
    pin_process(cpu)  # before the loop starts any thread
    asyncio.run(bridge_main_async(conn, ports))


class WorkerError(RuntimeError):
    pass


async def ask(conn, command: str, arg=None):
    """Send one command to a child process; return its reply, raising what it raised."""
    conn.send((command, arg))
    reply = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    if isinstance(reply, WorkerError):
        raise reply
    return reply


async def ask_all(conns: list, command: str, args: list | None = None) -> list:
    return await asyncio.gather(*(ask(c, command, None if args is None else a)
                                  for c, a in zip(conns, args or [None] * len(conns), strict=True)))


# ---------------------------------------------------------------- one step of one engine


def summarise_calls(calls: list[dict]) -> dict[str, float]:
    to_app = [x for c in calls for x in c["to_app"]]
    to_phone = [x for c in calls for x in c["to_phone"]]
    sent_phone = sum(c["sent_phone"] for c in calls)
    sent_app = sum(c["sent_app"] for c in calls)
    received_app = sum(c.get("received_app", len(c["to_app"])) for c in calls)
    received_phone = sum(c.get("received_phone", len(c["to_phone"])) for c in calls)
    return {
        "received_app": received_app,
        "received_phone": received_phone,
        "loss_to_app": sent_phone - received_app,
        "loss_to_phone": sent_app - received_phone,
        "p50_to_app_ms": 1000 * percentile(to_app, 50),
        "p99_to_app_ms": 1000 * percentile(to_app, 99),
        "p50_to_phone_ms": 1000 * percentile(to_phone, 50),
        "p99_to_phone_ms": 1000 * percentile(to_phone, 99),
    }


def cpu_figures(n: int, bridge_cpu: float, load: dict, busy: float) -> dict[str, float]:
    """CPU figures of a step; CPU amounts are fractions of one CPU over the sending window."""
    return {
        "cpu_per_call_pct": 100 * bridge_cpu / n,
        "calls_per_cpu": n / bridge_cpu if bridge_cpu > 0 else float("nan"),
        "bridge_cpu_pct": 100 * bridge_cpu,
        "load_cpu_pct": 100 * load["load_cpu"],
        # Everything else on the machine (other test runs share these CPUs).
        "other_cpu_pct": max(0.0, 100 * (busy - bridge_cpu - load["load_cpu"])),
    }


async def measure(load, seconds: float) -> tuple[dict, float, float]:
    """Run the load for `seconds`; return its result, the wall time and machine busy CPUs."""
    wall0, busy0 = time.monotonic(), machine_busy_seconds()
    result = await ask(load, "run", seconds)
    wall = time.monotonic() - wall0
    return result, wall, (machine_busy_seconds() - busy0) / wall


async def step_ours(load, workers: list, mode: str, n: int, seconds: float) -> dict[str, float]:
    """N calls split round-robin over the bridge processes `workers` (one each per CPU)."""
    w = len(workers)
    # With one worker the load has the other CPU; with more, no CPU is left for it alone.
    await ask(load, "pin", 1 if w == 1 else None)
    setup0 = time.monotonic()
    try:
        shares = await ask_all(workers, "offers", [(mode, list(range(k, n, w))) for k in range(w)])
        offers = sorted((o for share in shares for o in share), key=lambda o: o[0])
        answers = await ask(load, "setup", (mode, offers))
        await ask_all(workers, "answers", [answers[k::w] for k in range(w)])
        setup_s = time.monotonic() - setup0
        await asyncio.sleep(0.5)

        await ask_all(workers, "start")
        result, _, busy = await measure(load, seconds)
        stops = await ask_all(workers, "stop")
    finally:
        await ask(load, "teardown")
        await ask_all(workers, "teardown")

    bridge_cpu = sum(s["cpu_s"] / s["wall_s"] for s in stops)
    return {
        **summarise_calls(result["calls"]),
        **cpu_figures(n, bridge_cpu, result, busy),
        "busiest_worker_cpu_pct": 100 * max(s["cpu_s"] / s["wall_s"] for s in stops),
        "loop_lag_p99_ms": 1000 * max(s["lag_p99"] for s in stops),
        "rss_mib": sum(s["rss_mib"] for s in stops),
        "setup_s": setup_s,
    }


async def step_rtpengine(load, engine, client, mode: str, n: int, seconds: float) -> dict[str, float]:
    """N calls through rtpengine, set up over ng: phone offer -> app offer -> app answer."""
    from rtpengine import RtpengineCall

    await ask(load, "pin", 1)
    setup0 = time.monotonic()
    phone_ports = await ask(load, "phones", (mode, n))
    calls = [RtpengineCall(client, f"bench-{time.monotonic_ns()}-{i}") for i in range(n)]
    offers = []
    for batch in range(0, n, SETUP_BATCH):
        chunk = range(batch, min(n, batch + SETUP_BATCH))
        sdps = await asyncio.gather(*(calls[i].offer(phone_ports[i], mode == "transcode") for i in chunk))
        offers += [(i, None, sdp) for i, sdp in zip(chunk, sdps, strict=True)]
    try:
        answers = await ask(load, "setup", (mode, offers))
        bridge_ports = []
        for batch in range(0, n, SETUP_BATCH):
            bridge_ports += await asyncio.gather(*(
                call.answer(sdp) for call, (_, sdp) in zip(calls[batch:batch + SETUP_BATCH],
                                                           answers[batch:batch + SETUP_BATCH], strict=True)))
        await ask(load, "bridges", bridge_ports)
        connected = await ask(load, "wait_connected", 30 + n / 5)
        if connected < n:
            raise RuntimeError(f"only {connected} of {n} rtpengine calls connected; "
                               f"log {engine.log_path}")
        setup_s = time.monotonic() - setup0
        await asyncio.sleep(0.5)

        cpu0 = engine.cpu_seconds()
        result, wall, busy = await measure(load, seconds)
        bridge_cpu = (engine.cpu_seconds() - cpu0) / wall
        rss = engine.rss_mib()
    finally:
        await ask(load, "teardown")
        await asyncio.gather(*(call.delete() for call in calls), return_exceptions=True)
    return {
        **summarise_calls(result["calls"]),
        **cpu_figures(n, bridge_cpu, result, busy),
        "rss_mib": rss,
        "setup_s": setup_s,
    }


def passes(figures: dict[str, dict[str, float]]) -> bool:
    return (figures["loss_to_app"]["max"] <= 0 and figures["loss_to_phone"]["max"] <= 0
            and figures["p99_to_app_ms"]["median"] <= P99_LIMIT_MS
            and figures["p99_to_phone_ms"]["median"] <= P99_LIMIT_MS)


# ---------------------------------------------------------------- the run


def const(value: float, runs: int) -> dict[str, float]:
    return {"median": value, "min": value, "max": value, "runs": runs}


def add_ratios(figures: dict[str, dict[str, float]], mode: str, best: dict[str, int],
               done: dict[str, list[int]], a: str, b: str, name: str, per_call: str, runs: int) -> None:
    """Add `a`/`b` ratios: of max passing calls, and of `per_call` at the largest N both measured."""
    if a not in best or b not in best:
        return
    if best[b] > 0:
        figures[f"{mode}_max_calls_ratio_{name}"] = const(best[a] / best[b], runs)
    common = sorted(set(done[a]) & set(done[b]))
    if not common:
        return
    n = common[-1]
    value_a = figures[f"{a}_{mode}_N{n}_{per_call}"]["median"]
    value_b = figures[f"{b}_{mode}_N{n}_{per_call}"]["median"]
    if value_b > 0:
        figures[f"{mode}_{per_call}_ratio_{name}"] = const(value_a / value_b, runs)
        figures[f"{mode}_{per_call}_ratio_{name}_at_calls"] = const(n, runs)


def unit(key: str) -> str:
    if key.endswith("_setup_failed"):
        return "step"
    if key.endswith("_at_calls") or key.endswith("_max_calls"):
        return "calls"
    if "_ratio_" in key:
        return "x"
    for suffix, name in (("_ms", "ms"), ("_pct", "%"), ("_mib", "MiB"), ("_s", "s"),
                         ("calls_per_cpu", "calls/CPU")):
        if key.endswith(suffix):
            return name
    return "packets"


async def run(args: argparse.Namespace, load, workers: list, modes: list[str]
              ) -> tuple[dict[str, dict[str, float]], dict[str, object]]:
    from rtpengine import NgClient, Rtpengine

    figures: dict[str, dict[str, float]] = {}
    meta: dict[str, object] = {}
    configs: list[tuple[str, int]] = []
    if "ours" in args.engines:
        configs += [("ours" if w == 1 else f"ours_w{w}", w) for w in args.worker_counts]
    engine = client = None
    if "rtpengine" in args.engines:
        configs.append(("rtpengine", 1))
        engine = Rtpengine(ROOT / "var" / "bench" / f"{args.name}.rtpengine.log", cpu=0,
                           threads=args.rtpengine_threads)
        await engine.start()
        client = await NgClient.connect("127.0.0.1", engine.ng_port, reply_s=10)
        meta["rtpengine_threads"] = engine.threads_running()
        meta["rtpengine_log"] = str(engine.log_path)
    try:
        began = time.monotonic()
        for position, mode in enumerate(modes):
            # Each mode gets its share of the time budget, so that transcoding is measured too.
            deadline = began + args.max_seconds * (position + 1) / len(modes)
            steps = [int(s) for s in args.steps.split(",")] if args.steps else DEFAULT_STEPS[mode]
            best = {label: 0 for label, _ in configs}
            done: dict[str, list[int]] = {label: [] for label, _ in configs}
            failed: set[str] = set()
            for n in steps:
                # The engines take turns at each step, so that whatever else loads the machine
                # meanwhile falls on all of them alike.
                for label, w in configs:
                    if label in failed and not args.keep_going:
                        continue
                    if time.monotonic() > deadline:
                        print(f"time budget spent; stopping before {label} {mode} N={n}", flush=True)
                        break
                    runs = []
                    try:
                        for _ in range(args.repeat):
                            if label == "rtpengine":
                                runs.append(await step_rtpengine(load, engine, client, mode, n, args.seconds))
                            else:
                                runs.append(await step_ours(load, workers[:w], mode, n, args.seconds))
                    except (RuntimeError, OSError, ValueError) as exc:  # WorkerError, NgError too
                        # Calls that never connect fail the step; the run goes on with the rest.
                        print(f"{label:<10} {mode:<12} N={n:<4} FAIL  {exc}", flush=True)
                        figures[f"{label}_{mode}_N{n}_setup_failed"] = const(1, args.repeat)
                        failed.add(label)
                        continue
                    step = {key: summarise([r[key] for r in runs]) for key in runs[0]}
                    ok = passes(step)
                    print(f"{label:<10} {mode:<12} N={n:<4} {'PASS' if ok else 'FAIL'}  " + "  ".join(
                        f"{k}={v['median']:.2f}" for k, v in step.items()), flush=True)
                    for key, value in step.items():
                        figures[f"{label}_{mode}_N{n}_{key}"] = value
                    done[label].append(n)
                    if not ok:
                        failed.add(label)
                    elif label not in failed:
                        best[label] = n
                else:
                    if args.keep_going or len(failed) < len(configs):
                        continue
                break
            for label, _ in configs:
                figures[f"{label}_{mode}_max_calls"] = const(best[label], args.repeat)
            add_ratios(figures, mode, best, done, "ours", "rtpengine", "ours_to_rtpengine",
                       "cpu_per_call_pct", args.repeat)
            for label, w in configs:
                if label.startswith("ours_w"):
                    # calls_per_cpu: equal with W workers and with one when nothing shared
                    # (locks, memory bandwidth, the kernel's UDP path) limits scaling.
                    add_ratios(figures, mode, best, done, label, "ours", f"w{w}_to_w1",
                               "calls_per_cpu", args.repeat)
    finally:
        if client is not None:
            client.close()
        if engine is not None:
            engine.stop()
    return figures, meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["passthrough", "transcode", "both"], default="both")
    parser.add_argument("--engine", default="ours,rtpengine",
                        help="comma-separated: ours (our media workers), rtpengine (the C reference)")
    parser.add_argument("--workers", default="1,2",
                        help="comma-separated bridge process counts for ours, one CPU each")
    parser.add_argument("--rtpengine-threads", type=int, default=1,
                        help="rtpengine --num-threads (it is pinned to one CPU, like one worker)")
    parser.add_argument("--steps", help="comma-separated call counts (default per mode)")
    parser.add_argument("--seconds", type=float, default=5.0, help="sending time per step")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="stop stepping after (shared evenly between the modes)")
    parser.add_argument("--name", default="media_capacity")
    parser.add_argument("--keep-going", action="store_true",
                        help="measure every step even after one fails (CPU per call at larger N)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness for all processes (negative needs root; for shared hosts)")
    args = parser.parse_args()
    args.engines = [e.strip() for e in args.engine.split(",") if e.strip()]
    args.worker_counts = sorted({int(w) for w in args.workers.split(",")})
    if not set(args.engines) <= {"ours", "rtpengine"} or not args.engines:
        parser.error("--engine takes ours and/or rtpengine")
    if "rtpengine" in args.engines:
        from rtpengine import available

        if not available():
            parser.error("rtpengine is not installed (Debian package rtpengine-daemon); "
                         "or run with --engine ours")

    if args.nice:
        os.nice(args.nice)  # the child processes and rtpengine inherit it
    cpus = os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    load = context.Process(target=load_main, args=(child, 1), daemon=True)
    processes = [load]
    workers = []
    if "ours" in args.engines:
        span = 10000 // max(args.worker_counts)  # disjoint RTP port ranges in 20000-29999
        for k in range(max(args.worker_counts)):
            mine, theirs = context.Pipe()
            ports = (20000 + k * span, 20000 + (k + 1) * span - 1)
            processes.append(context.Process(target=bridge_main, args=(theirs, k % cpus, ports),
                                             daemon=True))
            workers.append(mine)
    for process in processes:
        process.start()
    modes = ["passthrough", "transcode"] if args.mode == "both" else [args.mode]
    loop = asyncio.new_event_loop()
    try:
        figures, meta = loop.run_until_complete(run(args, parent, workers, modes))
        for conn in [parent, *workers]:
            conn.send(("quit", None))
            conn.recv()
    finally:
        loop.close()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
    report(args.name, figures,
           {"seconds": args.seconds, "repeat": args.repeat, "pinned": cpus > 1, "nice": args.nice,
            "modes": "+".join(modes), "engines": "+".join(args.engines),
            "workers": "+".join(map(str, args.worker_counts)), **meta},
           {key: unit(key) for key in figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
