"""The AMI ingest benchmark runs end to end (a short run of bench/ami_ingest.py)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_the_recorded_stream_replays_into_complete_cdrs(tmp_path: Path) -> None:
    env = {**os.environ, "BRIDGE_VAR_DIR": str(tmp_path)}
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        # The benchmark's own database on the same server, never the test run's.
        env["DATABASE_URL"] = urlunsplit(urlsplit(url)._replace(path="/ccbridge_bench_ami_test"))
    else:
        env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "bench/ami_ingest.py", "--copies", "2", "--repeat", "1", "--name", "ami_ingest_test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    figures = json.loads((ROOT / "bench" / "results" / "ami_ingest_test.json").read_text())["figures"]
    value = {key: f["median"] for key, f in figures.items()}
    text = (ROOT / "bench" / "data" / "ami_events.txt").read_text()
    assert value["events"] == 2 * len(re.findall(r"^Event: ", text, re.MULTILINE))
    # Each copy of each recorded call is one CDR (not one per channel), and every one ended.
    calls = set(re.findall(r"^Linkedid: (\S+)$", text, re.MULTILINE))
    assert value["calls"] == 2 * len(calls)
    assert value["open_calls"] == 0 and value["skipped"] == 0
    # A board that reads slower than a burst may lose a few (channels_redis drops at capacity;
    # the board then asks for a fresh snapshot): nearly all must arrive.
    assert value["board_sent"] > 0 and value["board_received"] >= 0.9 * value["board_sent"]
    assert value["events_per_s"] > 0
