"""A phone calls `vendas` on the real Asterisk 22 and talks to an agent in the ConnectyCube app.

Every part is real and runs as its own process, as in production: Asterisk (lab chroot), a SIPp
phone, the web role (daphne, serving the sandbox and the agent app), the SIP edge (runedge), a
media worker (Celery, queue media), the AMI listener (runami), and the official ConnectyCube SDK
in Chromium. Tones are checked by frequency at both ends; the phone's RTP is captured on the wire
to show that media flows phone <-> worker, without Asterisk, after the direct-media re-INVITE.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from media.rtp import g711
from tests.fixtures.liveserver import ROOT
from tests.fixtures.prereq import require

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]

ANA = ("ana", "ana-demo", 2002)
AGENT_TONE = 600.0  # the browser's fake microphone
PHONE_TONE = 1000.0  # SIPp's rtp_stream WAV
WORKER_PORTS = (43000, 43999)


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
    # Asterisk dials the trunk only while its qualify says the edge is reachable: ask once the
    # edge listens (one qualify at a time: overlapping ones make the status flap).
    deadline = time.monotonic() + 20
    while not trunk_available(asterisk_lab):
        if time.monotonic() > deadline:
            pytest.fail("Asterisk never saw the edge as reachable:\n" + logs(procs))
        asterisk_lab.rx("pjsip qualify ccbridge")
        time.sleep(2.0)
    yield procs
    for proc in procs.values():
        stop(proc)


def trunk_available(lab) -> bool:
    return bool(re.search(r"ccbridge/\S+\s+\S+\s+Avail\b", lab.rx("pjsip show contacts")))


def logs(bridge) -> str:
    return "\n".join(f"--- {name}\n{p.log_path.read_text(errors='replace')[-2500:]}" for name, p in bridge.items())


class Capture:
    """tshark on loopback: the RTP in and out of the media worker's port range."""

    def __init__(self, path: Path) -> None:
        require(shutil.which("tshark") is not None, "tshark (Debian package tshark)")
        self.path = path
        low, high = WORKER_PORTS
        self.proc = subprocess.Popen(
            ["tshark", "-q", "-i", "lo", "-f", f"udp portrange {low}-{high}", "-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def packets(self) -> list[tuple[int, int, bytes]]:
        """(source port, destination port, RTP payload) of each packet, in order."""
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
                "data.data",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        result = []
        for line in out.splitlines():
            src, dst, hexdata = ([*line.split("\t"), "", ""])[:3]
            data = bytes.fromhex(hexdata.replace(":", ""))
            if len(data) > 12 and data[0] >> 6 == 2 and (data[1] & 0x7F) < 64:  # RTP, not RTCP
                csrc = data[0] & 0x0F
                result.append((int(src), int(dst), data[12 + 4 * csrc :]))
        return result


def dominant(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


async def test_a_phone_talks_to_an_agent_through_asterisk_and_the_bridge(
    web_role, launch_agent, asterisk_lab, sipp, bridge, tmp_path
):
    agent = await launch_agent(AGENT_TONE, locale="pt-BR")
    await agent.open(web_role.url)
    await agent.login(ANA[0], ANA[1])
    await asyncio.sleep(1.0)  # runami and the edge are up (runedge logs in on the first call)

    phone = sipp.call("1001", "vendas", hold_ms=60_000)
    capture = Capture(tmp_path / "worker.pcap")
    try:
        await agent.wait_for("ringing", within=25)
    except AssertionError as exc:
        pytest.fail(f"{exc}\n{logs(bridge)}\n--- asterisk\n{asterisk_lab.log_tail(40)}")
    assert await agent.page.text_content("#call-title") == "Vendas ligando..."
    await agent.page.click("#accept-button")
    await agent.wait_for("connected", within=25)

    heard = await agent.remote_frequency(PHONE_TONE)
    await asyncio.sleep(3.0)  # direct media settles; the phone hears the agent meanwhile

    await agent.page.click("#hangup-button")
    result = await asyncio.to_thread(phone.wait, 20)
    assert result.ok, result.describe()

    # On the wire, at the end of the call: the worker and the phone send to each other, and
    # Asterisk's RTP ports are out of the path; the phone hears the agent's tone.
    packets = capture.packets()
    asterisk = range(asterisk_lab.ports.rtp_start, asterisk_lab.ports.rtp_end + 1)
    is_worker = range(WORKER_PORTS[0], WORKER_PORTS[1] + 1)
    tail = packets[-100:]
    to_phone = [payload for src, dst, payload in tail if src in is_worker]
    from_phone = [(src, dst) for src, dst, _ in tail if dst in is_worker]
    print(
        f"\nlast 100 RTP packets: {len(to_phone)} worker->phone, {len(from_phone)} phone->worker, "
        f"peers {sorted({dst for src, dst, _ in tail if src in is_worker} | {s for s, _ in from_phone})}"
    )
    assert abs(heard - PHONE_TONE) <= 15, (heard, logs(bridge))
    assert to_phone and from_phone
    assert not any(port in asterisk for src, dst, _ in tail for port in (src, dst)), (
        "Asterisk is still in the media path"
    )
    pcm = np.concatenate([g711.decode("PCMU", p) for p in to_phone])
    assert abs(dominant(pcm) - AGENT_TONE) <= 15

    # One CDR row with both legs.
    await asyncio.sleep(1.5)
    out = web_role.manage(
        "shell",
        "-c",
        (
            "import json; from calls.models import Call; c = Call.objects.get(dialed='sip:vendas@empresa.com'); "
            "print(json.dumps(dict(linkedid=c.linkedid, sip=c.sip_call_id, cc=c.cc_session_id,"
            " agent=c.agent_cc_user_id,"
            " disp=c.disposition, app_codec=c.app_codec, sip_codec=c.sip_codec, state=c.state, enc=c.app_encrypted,"
            " events=[e.kind for e in c.events.all()])))"
        ),
    )
    cdr = json.loads(out.strip().splitlines()[-1])
    assert cdr["linkedid"] and cdr["sip"] and cdr["cc"], cdr
    assert (cdr["agent"], cdr["disp"], cdr["state"]) == (ANA[2], "answered", "ended"), cdr
    assert cdr["app_codec"] == "PCMU" and cdr["sip_codec"] == "PCMU" and cdr["enc"] is True, cdr
    for kind in ("sip.invite", "sip.180", "app.accepted", "sip.200", "app.hangup", "call.end"):
        assert kind in cdr["events"], cdr["events"]
