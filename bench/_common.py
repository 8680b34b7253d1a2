"""Helpers the benchmarks share: repeat runs, median/min/max, tables, JSON, reference comparison."""

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mib() -> float:
    """Resident set size of this process now, in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Sample RSS in a thread while a block runs; `peak` is the highest sample, in MiB."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakRss":
        self.start = rss_mib()
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def summarise(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "runs": len(samples),
    }


def repeat(fn: Callable[[], dict[str, float]], times: int) -> dict[str, dict[str, float]]:
    """Run `fn` several times; summarise each figure it returns."""
    runs = [fn() for _ in range(times)]
    return {key: summarise([r[key] for r in runs]) for key in runs[0]}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def report(
    name: str, figures: dict[str, dict[str, float]], meta: dict[str, Any], units: dict[str, str]
) -> Path:
    """Print a table (median [min–max]) beside the reference run, and write the JSON result."""
    RESULTS.mkdir(exist_ok=True)
    reference_path = RESULTS / f"{name}.reference.json"
    reference = json.loads(reference_path.read_text())["figures"] if reference_path.exists() else {}
    print(f"\n{name}  ({', '.join(f'{k}={v}' for k, v in meta.items())})")
    print(f"{'figure':<28}{'median':>14}{'min':>12}{'max':>12}   {'reference median':>18}")
    for key, s in figures.items():
        ref = reference.get(key, {}).get("median")
        ref_text = f"{ref:>18.1f}" if ref is not None else f"{'—':>18}"
        print(
            f"{key + ' (' + units.get(key, '') + ')':<28}"
            f"{s['median']:>14.1f}{s['min']:>12.1f}{s['max']:>12.1f}   {ref_text}"
        )
    out = RESULTS / f"{name}.json"
    out.write_text(
        json.dumps({"name": name, "meta": meta, "machine": machine(), "figures": figures}, indent=2)
    )
    print(f"written: {out}")
    return out
