"""A short run of bench/call_setup.py against the suite's Asterisk lab: a few calls, a few legs.

The benchmark starts its own web role, edge, media worker and runami; it uses the running lab
(two labs in one chroot would kill each other). Only that the figures are real is checked.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.fixtures.lab import hang_up_everything
from tests.fixtures.liveserver import DEFAULT_REDIS_URL, free_port, redis_reachable
from tests.fixtures.prereq import require

ROOT = Path(__file__).resolve().parents[2]
# The benchmark's own Redis database (5), on the test run's Redis server.
REDIS_URL = urlunsplit(urlsplit(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))._replace(path="/5"))
CALLS = LEGS = 4

pytestmark = [pytest.mark.asterisk, pytest.mark.integration]


@pytest.mark.timeout(480)
def test_a_short_run_measures_call_setup_and_legs(asterisk_lab):
    require(shutil.which("tshark") is not None, "tshark (Debian package tshark)")
    require(redis_reachable(REDIS_URL), f"Redis at {REDIS_URL}")
    ports = asterisk_lab.ports
    hang_up_everything(asterisk_lab)
    try:
        result = subprocess.run(
            [sys.executable, "bench/call_setup.py", "--calls", str(CALLS), "--rate", "2", "--hold", "1",
             "--legs", str(LEGS), "--name", "call_setup_test", "--redis-url", REDIS_URL,
             "--web-port", str(free_port()), "--lab-ports", f"{ports.sip},{ports.ami},{ports.bridge}",
             "--lab-ami-secret", asterisk_lab.ami_secret, "--lab-phone-password", asterisk_lab.phone_password,
             "--max-seconds", "360"],
            cwd=ROOT, capture_output=True, text=True, timeout=420,
        )
    finally:
        hang_up_everything(asterisk_lab)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    figures = json.loads((ROOT / "bench" / "results" / "call_setup_test.json").read_text())["figures"]
    value = {key: f["median"] for key, f in figures.items()}
    # Every call went through Asterisk, the edge, the worker and the app, and was hung up.
    assert value["calls_answered"] == CALLS and value["calls_completed"] == CALLS, value
    assert value["calls_failed"] == 0 and value["edge_rejected"] == 0, value
    # Both latencies were measured on the wire for every call (no timing asserted).
    assert value["invite_180_measured"] == CALLS and value["accept_200_measured"] == CALLS, value
    assert value["invite_180_p50_ms"] > 0 and value["accept_200_p99_ms"] > 0, value
    assert value["legs_connected"] == LEGS and value["legs_all_connected_s"] > 0, value
    assert value["leg_connect_max_ms"] > 0, value
