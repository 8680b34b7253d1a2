"""Benchmark: CPU per received 20 ms G.711 frame, aiortc's decoder thread against the bridge's tap.

    .venv/bin/python bench/media_receive_path.py --frames 20000

Stock aiortc hands each frame to a per-receiver decoder thread (`decoder_worker`: queue.Queue,
a decode, then `run_coroutine_threadsafe` back onto the loop); the bridge's tap calls a function
on the loop. Both are fed the same frames here, and the process's CPU time (all threads) per
frame is reported, together with the wall time until the loop has every decoded frame.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import resource
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import repeat, report  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def stock(frames: int) -> dict[str, float]:
    from aiortc.codecs import PCMU_CODEC
    from aiortc.jitterbuffer import JitterFrame
    from aiortc.rtcrtpreceiver import decoder_worker

    loop = asyncio.get_running_loop()
    inbox: queue.Queue = queue.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    thread = threading.Thread(target=decoder_worker,
                              args=(loop, inbox, outbox, threading.Event()))
    thread.start()
    payload = b"\xff" * 160
    c0, t0 = cpu(), time.perf_counter()
    got = 0
    for i in range(frames):
        inbox.put((PCMU_CODEC, JitterFrame(data=payload, timestamp=i * 160)))
        if i % 50 == 49:  # a second's worth of 20 ms frames at a time, as many calls would give
            while got < i - 10:
                await outbox.get()
                got += 1
    while got < frames:
        await outbox.get()
        got += 1
    result = {"cpu_us_per_frame": 1e6 * (cpu() - c0) / frames,
              "wall_us_per_frame": 1e6 * (time.perf_counter() - t0) / frames}
    inbox.put(None)
    thread.join()
    return result


async def tapped(frames: int) -> dict[str, float]:
    from aiortc.rtp import RtpPacket

    from media.session.hooks import _Tap

    sent = []
    tap = _Tap(lambda packet: sent.append(packet.payload))
    packet = RtpPacket(payload=b"\xff" * 160)
    c0, t0 = cpu(), time.perf_counter()
    for _ in range(frames):
        tap.add(packet)
    return {"cpu_us_per_frame": 1e6 * (cpu() - c0) / frames,
            "wall_us_per_frame": 1e6 * (time.perf_counter() - t0) / frames}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--name", default="media_receive_path")
    args = parser.parse_args()
    figures = {}
    for name, fn in (("stock", stock), ("tap", tapped)):
        for key, value in repeat(lambda f=fn: asyncio.run(f(args.frames)), args.repeat).items():
            figures[f"{name}_{key}"] = value
    report(args.name, figures, {"frames": args.frames, "repeat": args.repeat},
           {k: "us" for k in figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
