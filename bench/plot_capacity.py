"""Plot a media capacity run: CPU, p99 latency and loss against the number of calls, per engine.

    .venv/bin/python bench/plot_capacity.py                        # bench/results/media_capacity.json
    .venv/bin/python bench/plot_capacity.py RESULT.json -o OUT.png

Reads the JSON bench/media_capacity.py writes (figures keyed `{engine}_{mode}_N{n}_{figure}`,
medians plotted, min-max as error bars) and draws one row per mode: the bridge's CPU (percent of
one CPU), the worse direction's p99 one-way latency against the 10 ms limit, and the share of
packets lost.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a server; write the file only
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"
KEY = re.compile(r"^(?P<engine>ours(?:_w\d+)?|rtpengine)_(?P<mode>passthrough|transcode)_N(?P<n>\d+)_"
                 r"(?P<figure>\w+)$")
LABELS = {"ours": "ccbridge, 1 worker", "ours_w2": "ccbridge, 2 workers", "rtpengine": "rtpengine"}
P99_LIMIT_MS = 10.0


def series(figures: dict) -> dict[str, dict[str, dict[int, dict[str, dict[str, float]]]]]:
    """mode -> engine -> N -> figure -> {median, min, max}."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for key, value in figures.items():
        match = KEY.match(key)
        if match:
            out[match["mode"]][match["engine"]][int(match["n"])][match["figure"]] = value
    return out


def worst(step: dict, a: str, b: str, stat: str = "median") -> float:
    return max(step[a][stat], step[b][stat])


def plot(result: dict, path: Path) -> Path:
    data = series(result["figures"])
    modes = [m for m in ("passthrough", "transcode") if m in data]
    if not modes:
        raise ValueError("no per-step figures in this result")
    fig, axes = plt.subplots(len(modes), 3, figsize=(15, 4.2 * len(modes)), squeeze=False)
    for row, mode in enumerate(modes):
        cpu_ax, lat_ax, loss_ax = axes[row]
        for engine, steps in sorted(data[mode].items()):
            ns = sorted(steps)
            label = LABELS.get(engine, engine)
            cpu = [steps[n]["bridge_cpu_pct"] for n in ns]
            cpu_ax.errorbar(ns, [c["median"] for c in cpu],
                            yerr=[[c["median"] - c["min"] for c in cpu],
                                  [c["max"] - c["median"] for c in cpu]],
                            marker="o", capsize=3, label=label)
            lat_ax.plot(ns, [worst(steps[n], "p99_to_app_ms", "p99_to_phone_ms") for n in ns],
                        marker="o", label=label)
            lost = []
            for n in ns:
                step = steps[n]
                sent = step["received_app"]["median"] + step["received_phone"]["median"] \
                    + step["loss_to_app"]["median"] + step["loss_to_phone"]["median"]
                missing = max(0.0, step["loss_to_app"]["median"]) + max(0.0, step["loss_to_phone"]["median"])
                lost.append(100 * missing / sent if sent else 0.0)
            loss_ax.plot(ns, lost, marker="o", label=label)
            loss_ax.set_ylim(0, max(1.0, loss_ax.get_ylim()[1]))  # 0-1 % when nothing was lost
        cpu_ax.set_title(f"{mode}: bridge CPU (median, min-max)")
        cpu_ax.set_ylabel("% of one CPU")
        lat_ax.set_title(f"{mode}: p99 one-way latency, worse direction")
        lat_ax.set_ylabel("ms")
        lat_ax.set_yscale("log")
        lat_ax.axhline(P99_LIMIT_MS, color="red", linestyle="--", linewidth=1, label="10 ms limit")
        loss_ax.set_title(f"{mode}: packets lost")
        loss_ax.set_ylabel("% of packets sent")
        for ax in (cpu_ax, lat_ax, loss_ax):
            ax.set_xlabel("concurrent calls")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    machine = result.get("machine", {})
    fig.suptitle(f"Media capacity per worker process ({machine.get('cpus', '?')} CPUs, "
                 f"{machine.get('when', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("result", nargs="?", default=str(RESULTS / "media_capacity.json"))
    parser.add_argument("-o", "--output", help="PNG to write (default: beside the result)")
    args = parser.parse_args()
    source = Path(args.result)
    output = Path(args.output) if args.output else source.with_suffix(".png")
    print(f"written: {plot(json.loads(source.read_text()), output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
