"""Streaming 1 million CDRs keeps the exporting process's memory flat (a run of bench/export_csv.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_streaming_a_million_rows_keeps_memory_flat(tmp_path):
    env = {**os.environ, "BRIDGE_VAR_DIR": str(tmp_path)}
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        # The benchmark's own database on the same server, never the test run's.
        env["DATABASE_URL"] = urlunsplit(urlsplit(url)._replace(path="/ccbridge_bench_test"))
    else:
        env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "bench/export_csv.py",
            "--rows",
            "1000000",
            "--repeat",
            "1",
            "--name",
            "export_csv_test",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((ROOT / "bench" / "results" / "export_csv_test.json").read_text())["figures"]
    assert figures["mib_written"]["median"] > 100  # a million rows really went through
    # Flat: exporting 1M rows grows the process no more than a few MiB over exporting 100k.
    growth, growth_tenth = figures["rss_growth_mib"]["median"], figures["rss_growth_tenth_mib"]["median"]
    assert growth < 32, f"RSS grew {growth:.1f} MiB while streaming 1M rows"
    assert growth < growth_tenth + 16, (growth, growth_tenth)
