"""A tiny run of bench/media_receive_path.py: both receive paths handle real frames."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_run_measures_both_receive_paths():
    result = subprocess.run(
        [sys.executable, "bench/media_receive_path.py", "--frames", "300", "--repeat", "1",
         "--name", "media_receive_path_test"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((ROOT / "bench" / "results" / "media_receive_path_test.json").read_text())["figures"]
    for path in ("stock", "tap"):
        assert figures[f"{path}_cpu_us_per_frame"]["median"] > 0
        assert figures[f"{path}_wall_us_per_frame"]["median"] > 0
