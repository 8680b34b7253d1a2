"""Wait for a role process of ours (daphne) to serve HTTP; shared by the tests and the benchmarks."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float, log_tail: Callable[[], str]) -> None:
    """Poll `url` until it answers 200; raise RuntimeError with the log if the process exits first
    or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log_tail()}")
