"""Bring the Asterisk lab up for a developer: ``python -m tests.lab``.

Prints the SIP/AMI addresses, credentials and example SIPp commands, then
keeps Asterisk running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from .asterisk import PHONES, AsteriskLab, LabError, prerequisites
from .sipp import SCENARIO_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    parser.add_argument("--sip-port", type=int, default=5060)
    parser.add_argument("--ami-port", type=int, default=5038)
    parser.add_argument("--bridge-port", type=int, default=5070)
    parser.add_argument("--ami-secret", default="ccbridge-lab")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    missing = prerequisites(need_sipp=False)
    if missing:
        print("Cannot start the lab:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2
    lab = AsteriskLab(sip_port=args.sip_port, ami_port=args.ami_port,
                      bridge_port=args.bridge_port, ami_secret=args.ami_secret)
    try:
        lab.start()
    except LabError as exc:
        print(exc, file=sys.stderr)
        return 1
    sip = f"{lab.host}:{lab.ports.sip}"
    print(f"""
Asterisk lab is up (booted in {lab.boot_seconds:.1f}s, chroot {lab.root}).
  SIP (UDP)   {sip}    phones {', '.join(PHONES)}, password {lab.phone_password!r}
  AMI         {lab.host}:{lab.ports.ami}    user {lab.ami_username!r}, secret {lab.ami_secret!r}
  Trunk       Asterisk sends bridge calls to sip:{lab.host}:{lab.ports.bridge}
  CLI         chroot {lab.root} asterisk -r

Example SIPp commands (from {SCENARIO_DIR}; uac.xml streams ./audio.wav):
  sipp {sip} -sf register.xml -s 1002 -au 1002 -ap {lab.phone_password} -p 5092 -m 1
  sipp {sip} -sf uas.xml -p 5092 -set ring_ms 500 -rtp_echo
  sox -n -r 8000 -c 1 -e u-law audio.wav synth 3 sine 1000
  sipp {sip} -sf uac.xml -s 1002 -au 1001 -ap {lab.phone_password} \\
       -set caller 1001 -set hold_ms 3000 -m 1
  sipp {sip} -sf uac.xml -s vendas -au 1001 -ap {lab.phone_password} \\
       -set caller 1001 -set hold_ms 3000 -m 1     # rings vendas and the bridge

Press Ctrl-C to stop.""")
    try:
        signal.pause()
    except KeyboardInterrupt:
        print("\nstopping...")
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
