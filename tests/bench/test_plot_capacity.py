"""bench/plot_capacity.py draws a capacity run's JSON into a PNG (a pure unit: no media)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def step(cpu: float, p99: float, lost: float) -> dict:
    def fig(v: float) -> dict:
        return {"median": v, "min": v, "max": v, "runs": 1}
    return {"bridge_cpu_pct": fig(cpu), "p99_to_app_ms": fig(p99), "p99_to_phone_ms": fig(p99),
            "received_app": fig(1000 - lost), "received_phone": fig(1000), "loss_to_app": fig(lost),
            "loss_to_phone": fig(0)}


def test_it_plots_cpu_latency_and_loss_per_engine(tmp_path):
    figures = {}
    for engine, cost in (("ours", 0.3), ("rtpengine", 0.1), ("ours_w2", 0.3)):
        for n, lost in ((50, 0), (100, 0), (200, 12)):
            for name, value in step(cost * n, n / 20, lost).items():
                figures[f"{engine}_passthrough_N{n}_{name}"] = value
    figures["ours_passthrough_max_calls"] = {"median": 100, "min": 100, "max": 100, "runs": 1}
    source = tmp_path / "run.json"
    source.write_text(json.dumps({"figures": figures, "machine": {"cpus": 2, "when": "now"}}))
    out = tmp_path / "run.png"
    result = subprocess.run([sys.executable, "bench/plot_capacity.py", str(source), "-o", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_it_refuses_a_result_without_steps(tmp_path):
    source = tmp_path / "empty.json"
    source.write_text(json.dumps({"figures": {"x": {"median": 1}}}))
    result = subprocess.run([sys.executable, "bench/plot_capacity.py", str(source)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "no per-step figures" in result.stderr
