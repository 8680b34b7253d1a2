"""A tiny run of bench/media_capacity.py: two calls per mode, two seconds, both processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_a_tiny_capacity_run_reports_both_modes():
    result = subprocess.run(
        [sys.executable, "bench/media_capacity.py", "--steps", "2", "--seconds", "2",
         "--name", "media_capacity_test", "--max-seconds", "120"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((ROOT / "bench" / "results" / "media_capacity_test.json").read_text())[
        "figures"]
    for mode in ("passthrough", "transcode"):
        # Audio went both ways through real sessions and was measured (no timing asserted).
        assert figures[f"{mode}_N2_p50_to_app_ms"]["median"] > 0
        assert figures[f"{mode}_N2_p50_to_phone_ms"]["median"] > 0
        assert figures[f"{mode}_N2_rss_mib"]["median"] > 0
        assert f"{mode}_max_calls" in figures
