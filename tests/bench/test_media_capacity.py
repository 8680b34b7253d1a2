"""Tiny runs of bench/media_capacity.py: two calls, two seconds, real processes (no timing asserted)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.prereq import require

ROOT = Path(__file__).resolve().parents[2]


def rtpengine_available() -> bool:
    """What bench/rtpengine.py runs: Debian's /usr/bin/rtpengine, or one on PATH."""
    return os.access("/usr/bin/rtpengine", os.X_OK) or shutil.which("rtpengine") is not None


def run_bench(name: str, *options: str) -> dict:
    result = subprocess.run(
        [sys.executable, "bench/media_capacity.py", "--steps", "2", "--seconds", "2",
         "--name", name, "--max-seconds", "120", *options],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())["figures"]


def assert_measured(figures: dict, engine: str, mode: str) -> None:
    """Audio went both ways through real calls and was measured."""
    prefix = f"{engine}_{mode}_N2"
    # 2 s at 50 packets/s, 2 calls; a transcoder may still hold a frame or two at the end.
    assert figures[f"{prefix}_received_app"]["median"] >= 190
    assert figures[f"{prefix}_received_phone"]["median"] >= 190
    assert figures[f"{prefix}_p50_to_app_ms"]["median"] > 0
    assert figures[f"{prefix}_p50_to_phone_ms"]["median"] > 0
    assert figures[f"{prefix}_bridge_cpu_pct"]["median"] > 0
    assert figures[f"{prefix}_rss_mib"]["median"] > 0
    assert f"{engine}_{mode}_max_calls" in figures


@pytest.mark.integration
def test_a_tiny_capacity_run_reports_both_modes():
    figures = run_bench("media_capacity_test", "--engine", "ours", "--workers", "1")
    for mode in ("passthrough", "transcode"):
        assert_measured(figures, "ours", mode)


@pytest.mark.integration
def test_rtpengine_carries_the_same_load_and_the_ratio_is_reported():
    require(rtpengine_available(), "rtpengine (Debian package rtpengine-daemon)")
    figures = run_bench("media_capacity_rtpengine_test", "--engine", "ours,rtpengine", "--workers", "1")
    for mode in ("passthrough", "transcode"):
        assert_measured(figures, "rtpengine", mode)
        assert figures[f"{mode}_cpu_per_call_pct_ratio_ours_to_rtpengine"]["median"] > 0
        assert figures[f"{mode}_cpu_per_call_pct_ratio_ours_to_rtpengine_at_calls"]["median"] == 2


@pytest.mark.integration
def test_two_bridge_workers_share_the_calls():
    figures = run_bench("media_capacity_workers_test", "--engine", "ours", "--workers", "1,2",
                        "--mode", "passthrough")
    assert_measured(figures, "ours_w2", "passthrough")
    # Each worker carried one of the two calls: the busiest used less than both together.
    busiest = figures["ours_w2_passthrough_N2_busiest_worker_cpu_pct"]["median"]
    assert 0 < busiest < figures["ours_w2_passthrough_N2_bridge_cpu_pct"]["median"]
    assert figures["passthrough_calls_per_cpu_ratio_w2_to_w1"]["median"] > 0
