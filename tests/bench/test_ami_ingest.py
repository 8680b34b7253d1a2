"""The AMI ingest benchmark runs end to end (short runs of bench/ami_ingest.py)."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.fixtures.liveserver import DEFAULT_REDIS_URL, redis_reachable
from tests.fixtures.prereq import require
from tests.lab.asterisk import AsteriskLab
from tests.lab.sipp import Sipp

ROOT = Path(__file__).resolve().parents[2]
# The benchmark's board and listener on a Redis database of their own: no other board hears them.
BENCH_REDIS_DB = 6


def _bench_env(tmp_path: Path) -> dict[str, str]:
    redis_url = urlunsplit(urlsplit(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))._replace(path=f"/{BENCH_REDIS_DB}"))
    require(redis_reachable(redis_url), f"Redis at {redis_url} (the board's channel layer)")
    env = {**os.environ, "BRIDGE_VAR_DIR": str(tmp_path), "REDIS_URL": redis_url}
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        # The benchmark's own database on the same server, never the test run's.
        env["DATABASE_URL"] = urlunsplit(urlsplit(url)._replace(path="/ccbridge_bench_ami_test"))
    else:
        env.pop("DATABASE_URL", None)
    return env


def _run(args: list[str], env: dict[str, str], name: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "bench/ami_ingest.py", *args, "--repeat", "1", "--name", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    figures = json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())["figures"]
    return {key: f["median"] for key, f in figures.items()}


def _assert_board_latency(value: dict[str, float], prefix: str = "") -> None:
    """Every message the board read was matched to the event it first shows: real, ordered figures."""
    received, measured = value[f"{prefix}board_received"], value[f"{prefix}board_measured"]
    assert measured > 0 and measured >= 0.9 * received
    p50, p95, p99 = (value[f"{prefix}board_p{p}_ms"] for p in (50, 95, 99))
    assert all(math.isfinite(p) for p in (p50, p95, p99))
    assert 0 <= p50 <= p95 <= p99 <= value[f"{prefix}board_max_ms"]


@pytest.mark.integration
def test_the_recorded_stream_replays_into_complete_cdrs_and_a_real_board(tmp_path: Path) -> None:
    # A real board: a WebSocket to /ws/board/ on daphne; a flood, then 2,000 events/s.
    value = _run(["--copies", "2", "--pace", "2000"], _bench_env(tmp_path), "ami_ingest_test")
    text = (ROOT / "bench" / "data" / "ami_events.txt").read_text()
    assert value["events"] == 2 * len(re.findall(r"^Event: ", text, re.MULTILINE))
    # Each copy of each recorded call is one CDR (not one per channel), and every one ended.
    calls = set(re.findall(r"^Linkedid: (\S+)$", text, re.MULTILINE))
    assert value["calls"] == 2 * len(calls)
    assert value["open_calls"] == 0 and value["skipped"] == 0 and value["paced_open_calls"] == 0
    # A board that reads slower than a burst may lose a few (channels_redis drops at capacity;
    # the board then asks for a fresh snapshot): nearly all must arrive.
    for prefix in ("", "paced_"):
        assert value[f"{prefix}board_sent"] > 0
        assert value[f"{prefix}board_received"] >= 0.9 * value[f"{prefix}board_sent"]
        _assert_board_latency(value, prefix)
    assert value["events_per_s"] > 0 and value["paced_events_per_s"] > 0


@pytest.mark.integration
def test_board_latency_at_a_channel_layer_member(tmp_path: Path) -> None:
    value = _run(["--copies", "1", "--pace", "0", "--board", "layer"], _bench_env(tmp_path), "ami_ingest_layer_test")
    assert value["open_calls"] == 0 and "paced_events_per_s" not in value
    _assert_board_latency(value)


@pytest.mark.asterisk
def test_a_short_run_on_the_real_asterisk(tmp_path: Path, asterisk_lab: AsteriskLab, sipp: Sipp) -> None:
    # The session's lab (a second lab in the same chroot would kill it); `sipp` hangs up around it.
    env = {**_bench_env(tmp_path), "LAB_AMI_SECRET": asterisk_lab.ami_secret}
    attach = f"{asterisk_lab.ports.sip}:{asterisk_lab.ports.ami}"
    value = _run(
        ["--real", "--attach", attach, "--rate", "2", "--seconds", "2", "--hold-ms", "500"], env, "ami_ingest_real_test"
    )
    assert value["calls_placed"] == 4 and value["calls"] == 4 and value["answered"] == 4
    assert value["open_calls"] == 0 and value["skipped"] == 0
    assert value["events"] > 0 and value["events_per_s"] > 0
    assert value["board_sent"] > 0 and value["board_received"] >= 0.9 * value["board_sent"]
    _assert_board_latency(value)
