"""Benchmark: how many bridged calls one media process carries, passthrough and transcoding.

    .venv/bin/python bench/media_capacity.py                       # both modes, default steps
    .venv/bin/python bench/media_capacity.py --mode passthrough --steps 50,100,150 --seconds 5

The bridge (N MediaSessions on one asyncio loop) runs in this process, pinned to CPU 0. The load
runs in a second process pinned to CPU 1: N phones (UDP sockets sending PCMU every 20 ms, phases
spread over the 20 ms) and N apps (real aiortc peers, ICE + DTLS-SRTP, sending pre-encoded
audio so that the load spends no time encoding). Each step sets N calls up, lets them sit,
then sends for --seconds in both directions and tears them down.

Latency is one-way, phone -> app and app -> phone, measured in the load process with
CLOCK_MONOTONIC (shared by both processes): in passthrough from a send-time probe in the payload
(the payload crosses untouched), in transcoding from send-time tables indexed by the RTP
timestamp the bridge writes (one 20 ms packet in, one out). It includes the app peer's own aiortc
receive path, so it is an upper bound of what the bridge adds.

A step passes with 0 packets lost both ways and p99 <= 10 ms both ways. Stepping stops at the
first failing step, or when --max-seconds is spent.
"""

from __future__ import annotations

import argparse
import asyncio
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

from _common import repeat, report, rss_mib  # noqa: E402

PTIME = 0.02
PROBE = struct.Struct("!IId")  # call, counter, monotonic send time
P99_LIMIT_MS = 10.0
SETUP_BATCH = 10
LOOPBACK = ["127.0.0.1"]
DEFAULT_STEPS = {
    "passthrough": [10, 50, 100, 150, 200, 250, 300],
    "transcode": [10, 20, 40, 60, 80, 100],
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


def pin(cpu: int) -> bool:
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return False
    os.sched_setaffinity(0, {cpu})
    return True


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

    async def open(self, bridge_port: int, offer: str) -> tuple[int, str]:
        from aiortc import RTCSessionDescription

        from media.connectycube.ice import apply_host_addresses
        from media.session.hooks import tap_receiver

        loop = asyncio.get_running_loop()
        call = self

        class Phone(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:
                call.phone_received(data)

        self.transport, _ = await loop.create_datagram_endpoint(
            Phone, local_addr=("127.0.0.1", 0))
        self.bridge = ("127.0.0.1", bridge_port)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        self.pc.addTrack(self.track)
        tap_receiver(self.pc.getTransceivers()[0].receiver, self.app_received)
        apply_host_addresses(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
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
        self.track.push(payload, pts)

    def app_received(self, packet) -> None:
        if not self.measuring:
            return
        now = time.monotonic()
        if self.mode == "passthrough":
            if len(packet.payload) >= PROBE.size:
                _, counter, sent = PROBE.unpack_from(packet.payload)
                self.to_app.append((counter, now - sent))
        else:
            if self.app_ts0 is None:
                self.app_ts0 = packet.timestamp
            self.to_app.append((((packet.timestamp - self.app_ts0) & 0xFFFFFFFF) // 960, now))

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
        if command == "setup":
            mode, offers = arg
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
            await load_send(calls, seconds, calls[0].mode)
            await asyncio.sleep(0.3)  # packets still in flight
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


def load_main(conn, cpu: int) -> None:
    pin(cpu)
    asyncio.run(load_main_async(conn))


# ---------------------------------------------------------------- bridge (this process)


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


async def run_step(conn, mode: str, n: int, seconds: float) -> dict[str, float]:
    from media.rtp.sdp import PCMU
    from media.rtp.socket import PortRange
    from media.session.session import MediaConfig, MediaSession, SessionState

    loop = asyncio.get_running_loop()
    config = MediaConfig(rtp_ports=PortRange(20000, 29999), host_addresses=LOOPBACK,
                         prefer_opus=mode == "transcode")
    sessions = [MediaSession(config) for _ in range(n)]
    offers = []
    setup0 = time.monotonic()
    for batch in range(0, n, SETUP_BATCH):
        chunk = sessions[batch:batch + SETUP_BATCH]
        locals_ = await asyncio.gather(*(s.prepare_rtp() for s in chunk))
        sdps = await asyncio.gather(*(s.create_offer() for s in chunk))
        offers += [(batch + i, loc.port, sdp)
                   for i, (loc, sdp) in enumerate(zip(locals_, sdps, strict=True))]
    conn.send(("setup", (mode, offers)))
    answers = await loop.run_in_executor(None, conn.recv)
    for session, (phone_port, answer) in zip(sessions, answers, strict=True):
        await session.set_rtp_remote(("127.0.0.1", phone_port), "sendrecv", PCMU)
        await session.set_answer(answer)
    deadline = time.monotonic() + 30 + n / 5
    while not all(s.state == SessionState.CONNECTED for s in sessions):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sum(s.state == SessionState.CONNECTED for s in sessions)}"
                               f" of {n} calls connected")
        await asyncio.sleep(0.05)
    setup_s = time.monotonic() - setup0
    await asyncio.sleep(0.5)

    lag = LoopLag()
    lag.start()
    cpu0, wall0, busy0 = cpu_seconds(), time.monotonic(), machine_busy_seconds()
    conn.send(("run", seconds))
    result = await loop.run_in_executor(None, conn.recv)
    wall = time.monotonic() - wall0
    cpu = (cpu_seconds() - cpu0) / wall
    busy = (machine_busy_seconds() - busy0) / wall
    lags = await lag.stop()
    rss = rss_mib()

    conn.send(("teardown", None))
    await loop.run_in_executor(None, conn.recv)
    await asyncio.gather(*(s.close() for s in sessions))

    calls = result["calls"]
    to_app = [x for c in calls for x in c["to_app"]]
    to_phone = [x for c in calls for x in c["to_phone"]]
    sent_phone = sum(c["sent_phone"] for c in calls)
    sent_app = sum(c["sent_app"] for c in calls)
    received_app = sum(c.get("received_app", len(c["to_app"])) for c in calls)
    received_phone = sum(c.get("received_phone", len(c["to_phone"])) for c in calls)
    return {
        "loss_to_app": sent_phone - received_app,
        "loss_to_phone": sent_app - received_phone,
        "p50_to_app_ms": 1000 * percentile(to_app, 50),
        "p99_to_app_ms": 1000 * percentile(to_app, 99),
        "p50_to_phone_ms": 1000 * percentile(to_phone, 50),
        "p99_to_phone_ms": 1000 * percentile(to_phone, 99),
        "cpu_per_call_pct": 100 * cpu / n,
        "bridge_cpu_pct": 100 * cpu,
        "load_cpu_pct": 100 * result["load_cpu"],
        # Everything else on the machine (other test runs share these CPUs).
        "other_cpu_pct": max(0.0, 100 * (busy - cpu - result["load_cpu"])),
        "loop_lag_p99_ms": 1000 * percentile(lags, 99),
        "rss_mib": rss,
        "setup_s": setup_s,
    }


def passes(figures: dict[str, dict[str, float]]) -> bool:
    return (figures["loss_to_app"]["max"] <= 0 and figures["loss_to_phone"]["max"] <= 0
            and figures["p99_to_app_ms"]["median"] <= P99_LIMIT_MS
            and figures["p99_to_phone_ms"]["median"] <= P99_LIMIT_MS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["passthrough", "transcode", "both"], default="both")
    parser.add_argument("--steps", help="comma-separated call counts (default per mode)")
    parser.add_argument("--seconds", type=float, default=5.0, help="sending time per step")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop stepping after")
    parser.add_argument("--name", default="media_capacity")
    parser.add_argument("--keep-going", action="store_true",
                        help="measure every step even after one fails (CPU per call at larger N)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness for both processes (negative needs root; for shared hosts)")
    args = parser.parse_args()

    if args.nice:
        os.nice(args.nice)  # the load process inherits it
    pinned = pin(0)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    load = context.Process(target=load_main, args=(child, 1), daemon=True)
    load.start()
    modes = ["passthrough", "transcode"] if args.mode == "both" else [args.mode]
    began = time.monotonic()
    figures: dict[str, dict[str, float]] = {}
    best: dict[str, int] = {}
    loop = asyncio.new_event_loop()
    try:
        for mode in modes:
            steps = ([int(s) for s in args.steps.split(",")] if args.steps
                     else DEFAULT_STEPS[mode])
            best[mode] = 0
            failed = False
            for n in steps:
                if time.monotonic() - began > args.max_seconds:
                    print(f"time budget spent; stopping before {mode} N={n}")
                    break
                step = repeat(lambda m=mode, k=n: loop.run_until_complete(
                    run_step(parent, m, k, args.seconds)), args.repeat)
                ok = passes(step)
                print(f"{mode:<12} N={n:<4} {'PASS' if ok else 'FAIL'}  " + "  ".join(
                    f"{k}={v['median']:.2f}" for k, v in step.items()), flush=True)
                for key, value in step.items():
                    figures[f"{mode}_N{n}_{key}"] = value
                if not ok:
                    failed = True
                    if not args.keep_going:
                        break
                elif not failed:
                    best[mode] = n
        parent.send(("quit", None))
        parent.recv()
    finally:
        loop.close()
        load.join(timeout=10)
        if load.is_alive():
            load.terminate()
    for mode, n in best.items():
        figures[f"{mode}_max_calls"] = {"median": n, "min": n, "max": n, "runs": args.repeat}
    units = {k: ("ms" if k.endswith("_ms") else "%" if k.endswith("_pct") else
                 "MiB" if k.endswith("_mib") else "s" if k.endswith("_s") else
                 "calls" if k.endswith("_calls") else "packets") for k in figures}
    report(args.name, figures, {"seconds": args.seconds, "repeat": args.repeat,
                                "pinned": pinned, "nice": args.nice, "modes": "+".join(modes)},
           units)
    return 0


if __name__ == "__main__":
    sys.exit(main())
