"""The bridge as processes, for the end-to-end tests of inbound calls: runedge, a media worker
(Celery, queue media) and runami against the Asterisk lab and the web role; RTP capture; the CDR.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.liveserver import ROOT
from tests.fixtures.prereq import require

ANA = ("ana", "ana-demo", 2002)
AGENT_TONE = 600.0  # the browser's fake microphone
PHONE_TONE = 1000.0  # SIPp's rtp_stream WAV
# The media worker's RTP ports: a range of its own per test session (another suite may run),
# below Linux's ephemeral ports (32768-60999), where the lab's SIP ports are picked.
_BASE = random.randrange(21, 31) * 1000
WORKER_PORTS = (_BASE, _BASE + 999)


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("wb")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def bridge(web_role, asterisk_lab, tmp_path):
    """runedge on the lab's trunk port, a media worker and runami, on the web role's DB and Redis."""
    web_role.manage(
        "shell",
        "-c",
        (
            "from calls.models import Pbx; "
            f"Pbx.objects.update_or_create(name='lab', defaults=dict(host='127.0.0.1', port={asterisk_lab.ports.ami}, "
            f"username='{asterisk_lab.ami_username}', secret='{asterisk_lab.ami_secret}', context='from-phones'))"
        ),
    )
    env = {
        **web_role.env,
        "MEDIA_ICE_HOST_ADDRESSES": "127.0.0.1",
        "MEDIA_RTP_PORTS": f"{WORKER_PORTS[0]}-{WORKER_PORTS[1]}",
    }
    procs = {
        "worker": spawn(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bridgeproject",
                "worker",
                "-Q",
                "media",
                "-c",
                "1",
                "-n",
                "media-e2e@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            env,
            tmp_path / "worker.log",
        ),
        "edge": spawn(
            [sys.executable, "manage.py", "runedge", "--port", str(asterisk_lab.ports.bridge)],
            env,
            tmp_path / "edge.log",
        ),
        "ami": spawn([sys.executable, "manage.py", "runami"], env, tmp_path / "ami.log"),
    }
    try:
        # Asterisk dials the trunk only while its qualify says the edge is reachable. A qualify
        # sent before the edge listened (the previous test's edge had the port) times out up to
        # 3 s later and marks the trunk unreachable: wait that out, then ask (one at a time:
        # overlapping ones make the status flap).
        deadline = time.monotonic() + 20
        while "SIP edge on" not in procs["edge"].log_path.read_text(errors="replace"):
            if time.monotonic() > deadline or procs["edge"].poll() is not None:
                pytest.fail("the edge never listened:\n" + logs(procs))
            time.sleep(0.1)
        time.sleep(3.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                asterisk_lab.rx("pjsip qualify ccbridge")
            except Exception as exc:  # a CLI hiccup: ask again
                print(f"pjsip qualify: {exc}")
            time.sleep(0.5)
            if trunk_available(asterisk_lab):
                break
            if time.monotonic() > deadline:
                pytest.fail("Asterisk never saw the edge as reachable:\n" + logs(procs))
            time.sleep(1.5)
        # The CDR row is the listener's only if runami is the active instance when the call
        # starts (a stopped one's lock may linger for its TTL).
        deadline = time.monotonic() + 20
        while "is active" not in procs["ami"].log_path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                pytest.fail("runami never became the active listener:\n" + logs(procs))
            time.sleep(0.2)
        yield procs
    finally:  # also when the setup failed: leftover workers would take the next test's sessions
        for proc in procs.values():
            stop(proc)
        while _CAPTURES:  # a test that failed before reading its capture leaves tshark running
            _CAPTURES.pop().close()


def trunk_available(lab) -> bool:
    try:
        contacts = lab.rx("pjsip show contacts")
    except Exception:  # a CLI hiccup: ask again
        return False
    return bool(re.search(r"ccbridge/\S+\s+\S+\s+Avail\b", contacts))


def logs(bridge) -> str:
    return "\n".join(f"--- {name}\n{p.log_path.read_text(errors='replace')[-2500:]}" for name, p in bridge.items())


_CAPTURES: list[Capture] = []  # stopped by the `bridge` fixture at the end of each test


class Capture:
    """tshark on loopback: the RTP in and out of the media worker's port range."""

    def __init__(self, path: Path) -> None:
        require(shutil.which("tshark") is not None, "tshark (Debian package tshark)")
        self.path = path
        low, high = WORKER_PORTS
        _CAPTURES.append(self)
        self.proc = subprocess.Popen(
            ["tshark", "-q", "-i", "lo", "-f", f"udp portrange {low}-{high}", "-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def close(self) -> None:
        """Stop tshark (idempotent): a failed test must not leave it running."""
        stop(self.proc)

    def packets(self) -> list[tuple[int, int, bytes]]:
        """(source port, destination port, RTP payload) of each packet, in order.

        The raw UDP payload: tshark may dissect a stream as RTP (from the SDP it saw), and
        then no `data` field is left."""
        stop(self.proc)
        out = subprocess.run(
            [
                "tshark",
                "-r",
                str(self.path),
                "-T",
                "fields",
                "-e",
                "udp.srcport",
                "-e",
                "udp.dstport",
                "-e",
                "udp.payload",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        result = []
        for line in out.splitlines():
            src, dst, hexdata = ([*line.split("\t"), "", ""])[:3]
            data = bytes.fromhex(hexdata.replace(":", ""))
            if len(data) > 12 and data[0] >> 6 == 2 and (data[1] & 0x7F) < 64:  # audio RTP
                csrc = data[0] & 0x0F
                result.append((int(src), int(dst), data[12 + 4 * csrc :]))
        return result

    def events(self) -> list[tuple[int, int, bytes]]:
        """(source port, destination port, payload) of each RFC 4733 packet (PT 101); call after
        `packets`, which stops the capture."""
        out = subprocess.run(
            ["tshark", "-r", str(self.path), "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport",
             "-e", "udp.payload"],
            capture_output=True, text=True, timeout=60,
        ).stdout
        result = []
        for line in out.splitlines():
            src, dst, hexdata = ([*line.split("\t"), "", ""])[:3]
            data = bytes.fromhex(hexdata.replace(":", ""))
            if len(data) >= 16 and data[0] >> 6 == 2 and (data[1] & 0x7F) == 101:
                result.append((int(src), int(dst), data[12 + 4 * (data[0] & 0x0F) :]))
        return result


def dominant(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def cdr(web_role: Any) -> dict[str, Any]:
    """The latest inbound CDR row of `vendas`, with its event kinds and payloads."""
    out = web_role.manage(
        "shell",
        "-c",
        (
            "import json; from calls.models import Call; "
            "c = Call.objects.filter(dialed='sip:vendas@empresa.com').order_by('-pk').first(); "
            "print(json.dumps(dict(pk=c.pk, linkedid=c.linkedid, sip=c.sip_call_id, cc=c.cc_session_id,"
            " agent=c.agent_cc_user_id, disp=c.disposition, app_codec=c.app_codec, sip_codec=c.sip_codec,"
            " state=c.state, enc=c.app_encrypted, sip_status=c.sip_status, reject=c.cc_reject_reason,"
            " end_reason=c.end_reason, app_state=c.app_state, sip_channel=c.sip_channel,"
            " hangup_cause=c.hangup_cause, talk=c.talk_seconds,"
            " legs=[dict(channel=x.channel, kind=x.kind, answered=bool(x.answered_at)) for x in c.legs.all()],"
            " events=[e.kind for e in c.events.all()],"
            " payloads=[[e.kind, e.payload] for e in c.events.all()]), default=str))"
        ),
    )
    return json.loads(out.strip().splitlines()[-1])


def last_pk(web_role: Any) -> int:
    script = "from calls.models import Call; c = Call.objects.order_by('-pk').first(); print(c.pk if c else 0)"
    out = web_role.manage("shell", "-c", script)
    return int(out.strip().splitlines()[-1])


def set_mapping(web_role: Any, **fields: Any) -> None:
    """Change the seeded `vendas` mapping (a test restores it in `finally`)."""
    web_role.manage(
        "shell",
        "-c",
        (
            "from mappings.models import SipMapping; "
            f"SipMapping.objects.filter(sip_uri='sip:vendas@empresa.com').update(**{fields!r})"
        ),
    )


SEEDED_MAPPING = {"agents": [2002, 2003], "ring_strategy": "parallel", "ring_timeout": 30}
