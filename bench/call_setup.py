"""Benchmark: call setup latency through the real Asterisk lab, and 50 WebRTC legs at once.

    .venv/bin/python bench/call_setup.py                       # 10 calls/s, 200 calls, 50 legs, 1 run
    .venv/bin/python bench/call_setup.py --rate 10 --calls 200 --legs 50 --repeat 3

As root (the Asterisk lab is a chroot). One command starts everything and stops it on exit,
Ctrl-C or failure: the Asterisk 22 lab (SIP 5060, AMI 5038, trunk to the edge on 5070; the chroot
is built once under CCBRIDGE_LAB_CACHE), a fresh database (PostgreSQL `ccbridge_bench_<name>` on
the server of DATABASE_URL or 127.0.0.1:5432, dropped afterwards; a temporary SQLite file when no
PostgreSQL answers), the web role (daphne with the ConnectyCube sandbox, demo data, the `vendas`
mapping ringing only Ana), `runedge`, one Celery media worker process (`-Q media -c 1`) and
`runami`, all on --redis-url (default Redis DB 5). In this process a scripted ConnectyCube client
signs in to the sandbox as the agent Ana and accepts every call after --answer-delay with a real
aiortc peer (loopback ICE, DTLS-SRTP, silence as audio). SIPp (tests/sipp/uac.xml) places --calls
calls as phone 1001 to `vendas` at --rate calls/s; each is held --hold seconds after the 200 OK,
then the phone hangs up. Two warm-up calls first (the edge's ConnectyCube login, the worker's
first session) are not counted. The roles run with DEBUG off, as in production.

Figure 1, call setup, measured on the wire: tshark captures the trunk port (UDP 5070) on
loopback during the run. INVITE -> 180 is the kernel timestamp of Asterisk's INVITE to the edge
to that of the edge's first 180 for that Call-ID: the edge finds the mapping, the AMI listener's
CDR row, starts a session on the media worker, has it offer WebRTC, and rings the app. Accept ->
200 OK runs from the moment the scripted client has written its `accept` signal to the sandbox's
chat WebSocket (time.time(), CLOCK_REALTIME, the clock of tshark's timestamps) to the edge's
first 200 OK to that INVITE on the wire: the sandbox relays the accept, the worker applies the
answer, ICE connects worker <-> app, then the edge answers. The app's ConnectyCube session is
tied to the trunk's Call-ID by the CDR row the edge writes (`sip_call_id`, `cc_session_id`).
`calls_answered` counts INVITEs the edge answered with 200 OK, `calls_completed` the calls SIPp
counts successful (answered, held, hung up), `calls_failed` SIPp's failed calls.

Where INVITE -> 180 goes: `invite_cdr_*` runs from the INVITE on the wire to the time of the
edge's `sip.invite` CDR event (written once the mapping, the AMI listener's row and the CDR are
done, on the edge's ORM thread), `cdr_180_*` from there to the 180 (the media session on the
worker, its WebRTC offer, the ring signal). `cpu_<role>_pct` is the CPU each process group used
during the calls, in % of one CPU (`bench` is this process, the scripted app; `machine` is every
process on every CPU, to tell a loaded machine from a slow bridge).

Figure 2, --legs WebRTC legs at once on one real media worker process: this process starts
--legs media sessions on the worker through its Celery task (`media.tasks.start_session`, queue
`media`) and drives them with `media.control.RemoteSession`, as the edge does. Each session gets a
phone SDP (PCMU towards a UDP sink here) as for an inbound call, then, for all legs at once: the
worker's offer (`make_offer`), the answer of an aiortc app peer in this process, `set_answer` and
the candidates both ways (as the ConnectyCube signalling trickles them). A leg is connected when
the app peer's connectionState is `connected` (ICE and the DTLS handshake done) and the worker
has reported ICE `connected`. `legs_all_connected_s` runs from the start of the offers to the
last leg connected; `leg_connect_*_ms` is each leg's time from its offer/answer done to
connected. The app peers share this machine (and its 2 cores) with the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import repeat, report  # noqa: E402

from connectycube.call import CallConfig, P2PCall, P2PCallState  # noqa: E402
from connectycube.client import ConnectyCubeAccount  # noqa: E402
from connectycube.config import AppConfig  # noqa: E402
from connectycube.ice import sdp_candidates  # noqa: E402
from connectycube.peer import LocalPeer  # noqa: E402
from connectycube.signalling import CallType, Signal, SignalType  # noqa: E402
from media.control import RemoteSession  # noqa: E402
from media.session.hooks import EncodedTrack, tap_receiver  # noqa: E402
from tests.lab.asterisk import (  # noqa: E402
    DEFAULT_PHONE_PASSWORD,
    AsteriskLab,
    hang_up_everything,
    prerequisites,
)
from tests.lab.serving import wait_until_serving  # noqa: E402
from tests.lab.sipp import Sipp, SippProcess, free_udp_port  # noqa: E402

ANA = ("ana", "ana-demo", 2002)
SANDBOX_APP = (1, "demo-auth-key")  # seed_demo's sandbox application
LOOPBACK = ["127.0.0.1"]
# Asterisk allocates an RTP pair per channel even with direct media, two channels per call: the
# lab's default 200 ports carry 50 channels, too few for 10 calls/s held a few seconds.
ASTERISK_RTP = (31200, 31999)
WARMUP_CALLS = 2
PERCENTILES = (50, 95, 99)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: a child gets SIGTERM when this process dies, even by SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --- the processes ------------------------------------------------------------------------------


class Stack:
    """Everything the benchmark starts outside this process, stopped in reverse order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="ccbridge-bench-call-setup-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.lab: AsteriskLab | None = None
        self.own_lab = args.lab_ports is None
        self.postgres: tuple[str, str] | None = None  # (server URL, database name) to drop
        self.env: dict[str, str] = {}
        self.web_url = f"http://127.0.0.1:{args.web_port}"
        self.database = ""

    # lifecycle

    def start(self) -> None:
        self._start_lab()
        self._prepare_database()
        self._start_web_role()
        self._start_bridge()

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop_proc(name)
        if self.lab is not None and self.own_lab:
            log("stopping the Asterisk lab")
            self.lab.stop()
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                _drop_database(*self.postgres)
        if os.environ.get("CCBRIDGE_BENCH_KEEP_LOGS"):
            log(f"role logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log_file = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env or self.env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        log_file.close()
        self.procs[name] = proc
        return proc

    def stop_proc(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def log_text(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, lines: int = 30) -> str:
        parts = [f"--- {name}\n" + "\n".join(self.log_text(name).splitlines()[-lines:]) for name in self.procs]
        return "\n".join(parts)

    def manage(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
        return result.stdout

    # the parts

    def _start_lab(self) -> None:
        a = self.args
        if not self.own_lab:
            sip, ami, bridge = a.lab_ports
            self.lab = AsteriskLab(sip_port=sip, ami_port=ami, bridge_port=bridge, ami_secret=a.lab_ami_secret)
            self.lab.rx("core show version")  # fail early if it is not there
            log(f"using the running Asterisk lab (sip {sip}, ami {ami}, trunk {bridge})")
            return
        missing = prerequisites()
        if missing:
            raise SystemExit("cannot start the Asterisk lab: " + "; ".join(missing))
        self.lab = AsteriskLab(rtp_ports=ASTERISK_RTP, ami_secret=secrets.token_hex(12))
        log("starting the Asterisk lab (the first start builds the chroot, about a minute)")
        self.lab.start()
        log(f"Asterisk up in {self.lab.boot_seconds:.1f}s")

    def _prepare_database(self) -> None:
        url = self.args.database_url
        if url is None:
            env_url = os.environ.get("DATABASE_URL", "")
            url = env_url if env_url.startswith("postgres") else "postgres://postgres@127.0.0.1:5432/postgres"
        name = f"ccbridge_bench_{self.args.name}"
        if url.startswith("postgres"):
            try:
                _drop_database(url, name)
                _admin_execute(url, f'CREATE DATABASE "{name}"')
                self.postgres = (url, name)
                self.database = urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
            except Exception as exc:  # no PostgreSQL here: SQLite, as the embedded default
                log(f"PostgreSQL at {urlsplit(url).netloc} unusable ({exc}); using SQLite")
        if not self.database:
            self.database = f"sqlite:///{self.workdir / 'bench.sqlite3'}"

    def _start_web_role(self) -> None:
        from cryptography.fernet import Fernet

        a = self.args
        self.env = {
            **os.environ,
            "BRIDGE_ENV_FILE": str(self.workdir / "no.env"),  # nothing from a developer's .env
            "BRIDGE_ENV": "development",  # the sandbox and seed_demo need it
            "DEBUG": "false",  # as in production: no query log on every database call
            "BRIDGE_VAR_DIR": str(self.workdir / "var"),
            "SECRET_KEY": secrets.token_urlsafe(40),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CONNECTYCUBE_SANDBOX": "true",
            "DATABASE_URL": self.database,
            "REDIS_URL": a.redis_url,
            "CELERY_BROKER_URL": a.redis_url,
            "CELERY_RESULT_BACKEND": a.redis_url,
            "DJANGO_SETTINGS_MODULE": "bridgeproject.settings",
            "PYTHONUNBUFFERED": "1",
            "MEDIA_ICE_HOST_ADDRESSES": "127.0.0.1",  # loopback only: aioice skips 127.0.0.1 when it scans
            "MEDIA_RTP_PORTS": a.worker_rtp_ports,
            "MEDIA_MAX_SESSIONS": str(max(100, a.legs + 10)),
            "EDGE_SIP_PORT": str(self.lab.ports.bridge),
        }
        log(f"migrating {self.database.split('@')[-1]}")
        self.manage("migrate", "--noinput", "-v", "0")
        lab = self.lab
        assert lab is not None
        self.manage(
            "shell",
            "-c",
            (
                "from django.core.management import call_command; "
                "from calls.models import Pbx; from mappings.models import SipMapping; "
                f"call_command('seed_demo', base_url={self.web_url!r}, verbosity=0); "
                # Only Ana rings: Bruno is never signed in, and a leg to him would double the sessions.
                f"SipMapping.objects.filter(sip_uri='sip:vendas@empresa.com').update(agents=[{ANA[2]}], "
                "ring_strategy='parallel', ring_timeout=30); "
                f"Pbx.objects.update_or_create(name='lab', defaults=dict(host='127.0.0.1', port={lab.ports.ami}, "
                f"username={lab.ami_username!r}, secret={lab.ami_secret!r}, context='from-phones'))"
            ),
        )
        log(f"starting the web role on {self.web_url}")
        self.spawn(
            "daphne",
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(a.web_port),
             "bridgeproject.asgi:application"],
        )
        wait_until_serving(self.web_url + "/agent/", self.procs["daphne"], 60,
                           lambda: self.log_text("daphne")[-3000:])

    def _start_bridge(self) -> None:
        lab = self.lab
        assert lab is not None
        log("starting the media worker, runedge and runami")
        self.spawn(
            "worker",
            [sys.executable, "-m", "celery", "-A", "bridgeproject", "worker", "-Q", "media", "-c", "1",
             "-n", f"media-bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
        )
        self.spawn("edge", [sys.executable, "manage.py", "runedge", "--port", str(lab.ports.bridge)])
        self.spawn("ami", [sys.executable, "manage.py", "runami"])
        self._wait_log("edge", "SIP edge on", 30)
        self._wait_log("ami", "is active", 30)
        # Asterisk dials the trunk only while its qualify says the edge answers. A qualify sent
        # before the edge listened times out up to 3 s later: wait that out, then ask, one at a time.
        time.sleep(3.5)
        deadline = time.monotonic() + 30
        while not self.trunk_available():
            if time.monotonic() > deadline:
                raise RuntimeError("Asterisk never saw the edge as reachable:\n" + self.logs())
            with contextlib.suppress(Exception):
                lab.rx("pjsip qualify ccbridge")
            time.sleep(2.0)

    def _wait_log(self, name: str, text: str, within: float) -> None:
        deadline = time.monotonic() + within
        while text not in self.log_text(name):
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start ({text!r} not in its log):\n{self.logs()}")
            time.sleep(0.1)

    # Asterisk

    def trunk_available(self) -> bool:
        assert self.lab is not None
        try:
            contacts = self.lab.rx("pjsip show contacts")
        except Exception:  # a CLI hiccup: ask again
            return False
        return bool(re.search(r"ccbridge/\S+\s+\S+\s+Avail\b", contacts))

    def active_channels(self) -> int:
        assert self.lab is not None
        try:
            match = re.search(r"(\d+) active channel", self.lab.rx("core show channels count"))
        except Exception:
            return -1
        return int(match.group(1)) if match else -1

    def hang_up_everything(self, within: float = 15.0) -> None:
        assert self.lab is not None
        hang_up_everything(self.lab, within)

    def edge_rows(self) -> dict[str, tuple[str, float]]:
        """Per trunk Call-ID, from the edge's CDR row: the app's ConnectyCube session id (set at
        the 200 OK) and when the edge wrote its `sip.invite` event (epoch seconds)."""
        out = self.manage(
            "shell",
            "-c",
            (
                "import json; from calls.models import CallEvent; "
                "print(json.dumps({e.call.sip_call_id: (e.call.cc_session_id, e.at.timestamp()) for e in "
                "CallEvent.objects.filter(kind='sip.invite').exclude(call__sip_call_id='').select_related('call')}))"
            ),
        )
        return {k: (v[0], v[1]) for k, v in json.loads(out.strip().splitlines()[-1]).items()}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each role (its whole process group), Asterisk and this process."""
        groups = {proc.pid: name for name, proc in self.procs.items() if name != "tshark"}
        used = dict.fromkeys([*groups.values(), "asterisk"], 0.0)
        tick = os.sysconf("SC_CLK_TCK")
        asterisk = self.lab.pid if self.lab is not None and self.own_lab else None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            if int(fields[2]) in groups:
                used[groups[int(fields[2])]] += seconds
            elif int(entry.name) == asterisk:
                used["asterisk"] += seconds
        times = os.times()
        used["bench"] = times.user + times.system  # the scripted app (and the legs' app peers)
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:8]]
        used["machine"] = (sum(cpu) - cpu[3] - cpu[4]) / tick  # all CPUs, busy time
        return used


def _admin_execute(server_url: str, sql: str) -> None:
    import psycopg

    parts = urlsplit(server_url)
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _drop_database(server_url: str, name: str) -> None:
    _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the trunk on the wire ----------------------------------------------------------------------


class TrunkCapture:
    """tshark on loopback, on the trunk's UDP port, for the length of one run."""

    def __init__(self, stack: Stack, path: Path, port: int) -> None:
        self.stack, self.path, self.port = stack, path, port

    def __enter__(self) -> TrunkCapture:
        proc = self.stack.spawn(
            "tshark", ["tshark", "-i", "lo", "-f", f"udp port {self.port}", "-w", str(self.path)]
        )
        deadline = time.monotonic() + 20
        # tshark says so on stderr once it captures (the spawn log).
        while "Capturing on" not in self.stack.log_text("tshark"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tshark did not start:\n" + self.stack.log_text("tshark"))
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.stop_proc("tshark", signal.SIGINT)  # SIGINT: tshark finishes the file

    def messages(self) -> list[tuple[float, int, str, str, int, str]]:
        """(time, source port, Call-ID, method, status, CSeq method) of each SIP message."""
        out = subprocess.run(
            ["tshark", "-r", str(self.path), "-d", f"udp.port=={self.port},sip", "-Y", "sip",
             "-T", "fields", "-E", "separator=\t", "-e", "frame.time_epoch", "-e", "udp.srcport",
             "-e", "sip.Call-ID", "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.CSeq.method"],
            capture_output=True, text=True, timeout=120,
        ).stdout
        result = []
        for line in out.splitlines():
            when, src, call_id, method, status, cseq = ([*line.split("\t"), "", "", "", "", ""])[:6]
            if not when or not call_id:
                continue
            result.append((float(when), int(src or 0), call_id, method, int(status or 0), cseq))
        return result


def setup_times(messages: list[tuple[float, int, str, str, int, str]], edge_port: int) -> dict[str, dict[str, float]]:
    """Per trunk Call-ID: the first INVITE in, and the edge's first 180, 200 and final failure."""
    calls: dict[str, dict[str, float]] = {}
    for when, src, call_id, method, status, cseq in sorted(messages):
        call = calls.setdefault(call_id, {})
        if src != edge_port and method == "INVITE":
            call.setdefault("invite", when)
        elif src == edge_port and status and cseq == "INVITE":
            if status == 180:
                call.setdefault("180", when)
            elif status == 200:
                call.setdefault("200", when)
            elif status >= 300:
                call.setdefault("failed", status)
    return {k: v for k, v in calls.items() if "invite" in v}


# --- the scripted agent -------------------------------------------------------------------------


class Agent:
    """Ana in a ConnectyCube app: online on the sandbox, accepting every call with an aiortc peer."""

    def __init__(self, web_url: str, answer_delay: float) -> None:
        ws_url = "ws://" + web_url.split("://", 1)[1]
        app = AppConfig(
            app_id=SANDBOX_APP[0], auth_key=SANDBOX_APP[1], api_url=f"{web_url}/cc-sandbox/api",
            chat_url=f"{ws_url}/cc-sandbox/chat/", chat_domain="localhost",
        )
        # The bridge's ring timeout is 30 s: the app never gives up first.
        config = CallConfig(host_addresses=LOOPBACK, ring_timeout=60.0, ice_timeout=30.0)
        self.account = ConnectyCubeAccount(app, ANA[0], ANA[1], call_config=config,
                                           on_incoming_call=self._on_call)
        self.answer_delay = answer_delay
        self.accept_sent: dict[str, float] = {}  # ConnectyCube session id -> time.time()
        self.connected = 0
        self.errors: list[str] = []
        self._send_signal = self.account.send_signal
        self.account.send_signal = self._timed_send_signal  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.account.start()

    async def close(self) -> None:
        await self.account.close()

    def reset(self) -> None:
        self.accept_sent.clear()
        self.connected = 0
        self.errors.clear()

    async def _timed_send_signal(self, user_id: int, signal: Signal) -> None:
        await self._send_signal(user_id, signal)
        if signal.signal_type == SignalType.ACCEPT:
            # The accept is on the chat WebSocket now (aiohttp writes it to the socket at once).
            self.accept_sent[signal.session_id] = time.time()

    async def _on_call(self, call: P2PCall) -> None:
        call.on("ice_state", lambda state: self._ice(call, state))
        # A real agent's app runs on its own device. Here dozens of them share this process, so
        # each one skips aiortc's per-frame encoder and decoder threads: a silent pre-encoded
        # track out and a tap in, as in bench/media_capacity.py. The signalling and the ICE and
        # DTLS handshakes, which are what this benchmark times, are untouched.
        pc = call.peer.pc  # type: ignore[attr-defined]
        pc.addTrack(EncodedTrack(8000))
        tap_receiver(pc.getTransceivers()[0].receiver, lambda packet: None)
        await asyncio.sleep(self.answer_delay)
        if call.state != P2PCallState.RINGING:
            return
        try:
            await call.accept()
        except Exception as exc:  # counted, and the call hung up; the run goes on
            self.errors.append(f"{type(exc).__name__}: {exc}")
            await call.hangup({"reason": "error"})

    def _ice(self, call: P2PCall, state: str) -> None:
        if state in ("connected", "completed") and not getattr(call, "_bench_counted", False):
            call._bench_counted = True  # type: ignore[attr-defined]
            self.connected += 1


# --- one run ------------------------------------------------------------------------------------


async def place_calls(sipp: Sipp, calls: int, rate: float, hold: float) -> tuple[SippProcess, float]:
    timeout = calls / rate + hold + 60
    proc = sipp.start(
        "uac", service="vendas", phone="1001", calls=calls, rate=rate,
        variables={"hold_ms": int(hold * 1000), "caller": "1001"},
        extra=["-trace_stat", "-fd", "1"], timeout=timeout,
    )
    return proc, timeout


def sipp_counts(proc: SippProcess) -> tuple[int, int]:
    """(successful, failed) calls from SIPp's statistics file."""
    for path in proc.workdir.glob("*.csv"):
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
        if len(lines) < 2:
            continue
        header, last = lines[0].split(";"), lines[-1].split(";")
        row = dict(zip(header, last, strict=False))
        return int(row.get("SuccessfulCall(C)", 0) or 0), int(row.get("FailedCall(C)", 0) or 0)
    return 0, 0


async def call_run(stack: Stack, sipp: Sipp, agent: Agent, args: argparse.Namespace, index: int) -> dict[str, float]:
    """One SIPp run through the whole stack; the setup latencies on the wire."""
    assert stack.lab is not None
    await asyncio.to_thread(stack.hang_up_everything)
    agent.reset()
    port = stack.lab.ports.bridge
    with TrunkCapture(stack, stack.workdir / f"trunk-{index}.pcap", port) as capture:
        log(f"run {index + 1}: {args.calls} calls at {args.rate}/s, held {args.hold} s")
        cpu_before, wall_before = stack.cpu_seconds(), time.monotonic()
        proc, timeout = await place_calls(sipp, args.calls, args.rate, args.hold)
        result = await asyncio.to_thread(proc.wait, timeout + 15)
        cpu_after, wall = stack.cpu_seconds(), time.monotonic() - wall_before
        await asyncio.sleep(1.0)  # the last BYEs and their answers
    successful, failed = sipp_counts(proc)
    if not result.ok:
        log(f"SIPp: {successful} successful, {failed} failed; errors:\n{result.errors[-1500:]}")
    wire = setup_times(capture.messages(), port)
    rows = await asyncio.to_thread(stack.edge_rows)
    sessions = {cc: call_id for call_id, (cc, _) in rows.items() if cc}
    invite_180 = [(c["180"] - c["invite"]) * 1000 for c in wire.values() if "180" in c]
    accept_200 = []
    for session_id, sent in agent.accept_sent.items():
        call = wire.get(sessions.get(session_id, ""))
        if call is not None and "200" in call:
            accept_200.append((call["200"] - sent) * 1000)
    # Where INVITE -> 180 goes, by the edge's `sip.invite` event: before it, the mapping, the AMI
    # listener's row and the CDR; after it, the media session, the WebRTC offer and the ring.
    pre_ring, media_ring = [], []
    for call_id, c in wire.items():
        if call_id in rows and "180" in c:
            pre_ring.append((rows[call_id][1] - c["invite"]) * 1000)
            media_ring.append((c["180"] - rows[call_id][1]) * 1000)
    answered = sum(1 for c in wire.values() if "200" in c)
    edge_failures = sum(1 for c in wire.values() if "failed" in c)
    figures: dict[str, float] = {
        "calls": float(args.calls),
        "calls_answered": float(answered),
        "calls_completed": float(successful),
        "calls_failed": float(failed),
        "edge_rejected": float(edge_failures),
        "app_accepts": float(len(agent.accept_sent)),
        "invite_180_measured": float(len(invite_180)),
        "accept_200_measured": float(len(accept_200)),
    }
    for q in PERCENTILES:
        figures[f"invite_180_p{q}_ms"] = percentile(invite_180, q)
    for q in PERCENTILES:
        figures[f"accept_200_p{q}_ms"] = percentile(accept_200, q)
    for q in (50, 95):
        figures[f"invite_cdr_p{q}_ms"] = percentile(pre_ring, q)
    for q in (50, 95):
        figures[f"cdr_180_p{q}_ms"] = percentile(media_ring, q)
    for role in cpu_after:  # % of one CPU over the run, per role; `machine` counts every CPU
        figures[f"cpu_{role}_pct"] = (cpu_after[role] - cpu_before[role]) / wall * 100
    log(
        f"run {index + 1}: {answered}/{args.calls} answered, SIPp {successful} ok / {failed} failed; "
        f"INVITE->180 p50/p95/p99 {figures['invite_180_p50_ms']:.1f}/{figures['invite_180_p95_ms']:.1f}/"
        f"{figures['invite_180_p99_ms']:.1f} ms; accept->200 {figures['accept_200_p50_ms']:.1f}/"
        f"{figures['accept_200_p95_ms']:.1f}/{figures['accept_200_p99_ms']:.1f} ms"
    )
    log(
        f"run {index + 1}: INVITE->CDR p50 {figures['invite_cdr_p50_ms']:.1f} ms, CDR->180 p50 "
        f"{figures['cdr_180_p50_ms']:.1f} ms; CPU % of a core: "
        + ", ".join(f"{role} {figures[f'cpu_{role}_pct']:.0f}" for role in cpu_after)
        + f" (machine: {os.cpu_count()} CPUs)"
    )
    if agent.errors:
        log(f"agent errors: {agent.errors[:5]}")
    # Let the last calls end before the next part measures anything.
    for _ in range(100):  # 20 s at most
        if not agent.account.active_calls() and await asyncio.to_thread(stack.active_channels) == 0:
            break
        await asyncio.sleep(0.2)
    return figures


class _Sink(asyncio.DatagramProtocol):
    """Where the worker sends the phone's RTP in the legs run: dropped."""


def phone_sdp(port: int) -> str:
    return "\r\n".join([
        "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {port} RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16", "a=sendrecv", "",
    ])


async def legs_run(args: argparse.Namespace, index: int) -> dict[str, float]:
    """--legs sessions on the real media worker, their WebRTC legs negotiated and connected at once."""
    from celery import Celery

    loop = asyncio.get_running_loop()
    sink, _ = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
    sdp = phone_sdp(sink.get_extra_info("sockname")[1])
    celery = Celery("bench-call-setup", broker=args.redis_url)
    sessions = [RemoteSession(args.redis_url, timeout=30) for _ in range(args.legs)]
    peers: list[LocalPeer] = []
    n = args.legs
    try:
        started = time.monotonic()
        for session in sessions:  # what the edge's start_media sends, once per leg
            celery.send_task("media.tasks.start_session", args=[session.session_id, False], queue="media")
        await asyncio.gather(*(s.wait_started(30) for s in sessions))
        session_start = time.monotonic() - started
        await asyncio.gather(*(s.request("set_rtp_remote", sdp=sdp) for s in sessions))

        async def leg(session: RemoteSession) -> tuple[float, float]:
            peer = LocalPeer(ice_servers=[], host_addresses=LOOPBACK, call_type=CallType.AUDIO)
            peers.append(peer)
            app_connected = loop.create_future()
            worker_connected = loop.create_future()

            def app_state() -> None:
                if peer.pc.connectionState == "connected" and not app_connected.done():
                    app_connected.set_result(time.monotonic())

            def worker_event(name: str, data: dict[str, Any]) -> None:
                if name == "ice_state" and data.get("state") in ("connected", "completed"):
                    if not worker_connected.done():
                        worker_connected.set_result(time.monotonic())

            peer.pc.on("connectionstatechange", app_state)
            session.on_event = worker_event
            offer = (await session.request("make_offer"))["sdp"]
            answer = await peer.make_answer(offer)
            await session.request("set_answer", sdp=answer)
            negotiated = time.monotonic()
            # The candidates both ways, as the ConnectyCube signalling carries them.
            await asyncio.gather(
                session.request("add_candidates", candidates=[
                    {"index": c.sdp_mline_index, "mid": c.sdp_mid, "candidate": c.candidate}
                    for c in sdp_candidates(answer)
                ]),
                peer.add_candidates(sdp_candidates(offer)),
            )
            done = max(await asyncio.wait_for(asyncio.gather(app_connected, worker_connected), 30))
            return negotiated, done

        log(f"run {index + 1}: {n} WebRTC legs at once on the media worker")
        t0 = time.monotonic()
        results = await asyncio.gather(*(leg(s) for s in sessions), return_exceptions=True)
        legs = [r for r in results if not isinstance(r, BaseException)]
        for failure in [r for r in results if isinstance(r, BaseException)][:3]:
            log(f"a leg failed: {type(failure).__name__}: {failure}")
        connect_ms = [(done - negotiated) * 1000 for negotiated, done in legs]
        figures = {
            "legs": float(n),
            "legs_connected": float(len(legs)),
            "legs_session_start_s": session_start,
            "legs_offer_answer_s": max((neg for neg, _ in legs), default=float("nan")) - t0,
            "legs_all_connected_s": max((done for _, done in legs), default=float("nan")) - t0,
            "leg_connect_p50_ms": percentile(connect_ms, 50),
            "leg_connect_p95_ms": percentile(connect_ms, 95),
            "leg_connect_max_ms": max(connect_ms, default=float("nan")),
        }
        log(
            f"run {index + 1}: {len(legs)}/{n} legs connected, all in {figures['legs_all_connected_s']:.2f} s "
            f"(sessions started in {session_start:.2f} s; per leg p50 {figures['leg_connect_p50_ms']:.0f} ms, "
            f"max {figures['leg_connect_max_ms']:.0f} ms)"
        )
        return figures
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        sink.close()
        celery.close()


async def worker_ready(redis_url: str, stack: Stack, within: float = 60.0) -> None:
    """Wait until the media worker takes sessions: a probe session through its Celery task."""
    from celery import Celery

    celery = Celery("bench-call-setup", broker=redis_url)
    session = RemoteSession(redis_url, timeout=5)
    try:
        celery.send_task("media.tasks.start_session", args=[session.session_id, False], queue="media")
        await session.wait_started(within)
    except Exception as exc:
        raise RuntimeError(f"the media worker took no session: {exc}\n{stack.logs()}") from exc
    finally:
        await session.close()
        celery.close()


async def run(stack: Stack, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    assert stack.lab is not None
    agent = Agent(stack.web_url, args.answer_delay)
    sipp = Sipp(stack.lab.host, stack.lab.ports.sip, args.lab_phone_password, workroot=stack.workdir / "sipp")
    (stack.workdir / "sipp").mkdir()
    try:
        await worker_ready(args.redis_url, stack)
        await agent.start()
        # No desk phone rings with the bridge: a registration kept in astdb would answer calls.
        port = free_udp_port()
        await asyncio.to_thread(sipp.register, "vendas", port)
        await asyncio.to_thread(sipp.run, "unregister", service="vendas", phone="vendas", port=port, timeout=10)
        log(f"{WARMUP_CALLS} warm-up calls")
        proc, timeout = await place_calls(sipp, WARMUP_CALLS, 2.0, 1.0)
        warm = await asyncio.to_thread(proc.wait, timeout + 15)
        if not warm.ok:
            raise RuntimeError(f"the warm-up calls failed:\n{warm.describe()}\n{stack.logs()}")

        results = []
        for index in range(args.repeat):
            figures = await call_run(stack, sipp, agent, args, index)
            if args.legs:
                figures.update(await legs_run(args, index))
            results.append(figures)
        # _common.repeat summarises figure by figure; the runs were async, so it replays them.
        return repeat(iter(results).__next__, len(results))
    finally:
        sipp.close()
        await agent.close()


def parse_ports(text: str) -> tuple[int, int, int]:
    sip, ami, bridge = (int(x) for x in text.split(","))
    return sip, ami, bridge


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="new calls per second")
    parser.add_argument("--calls", type=int, default=200, help="calls per run")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds each call is held after the 200 OK")
    parser.add_argument("--answer-delay", type=float, default=0.2, help="seconds the app rings before it accepts")
    parser.add_argument("--legs", type=int, default=50, help="WebRTC legs set up at once (0: skip)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--name", default="call_setup")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--web-port", type=int, default=8767, help="the web role's (daphne) port")
    parser.add_argument("--worker-rtp-ports", default="20000-29999")
    parser.add_argument("--database-url", help="PostgreSQL server to create the benchmark's database on")
    parser.add_argument("--lab-ports", type=parse_ports, metavar="SIP,AMI,TRUNK",
                        help="use an Asterisk lab already running (the test suite's) instead of starting one")
    parser.add_argument("--lab-ami-secret", default="", help="with --lab-ports: its AMI secret")
    parser.add_argument("--lab-phone-password", default=DEFAULT_PHONE_PASSWORD)
    parser.add_argument("--max-seconds", type=int, default=1200, help="give up (and clean up) after")
    args = parser.parse_args()
    for tool in ("tshark", "sipp"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing (Debian packages tshark, sip-tester)", file=sys.stderr)
            return 2

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # Also SIGINT: a shell starts background jobs with it ignored, and Python keeps that.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(sig, interrupt)
    signal.alarm(args.max_seconds)
    stack = Stack(args)
    try:
        stack.start()
        figures = asyncio.run(run(stack, args))
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}); cleaning up", file=sys.stderr)
        return 130
    except Exception:
        print(stack.logs(40), file=sys.stderr)
        raise
    finally:
        signal.alarm(0)
        stack.stop()
    units = {k: "ms" if k.endswith("_ms") else "s" if k.endswith("_s") else "%" if k.endswith("_pct") else "count"
             for k in figures}
    meta = {
        "rate": args.rate, "calls": args.calls, "hold_s": args.hold, "answer_delay_s": args.answer_delay,
        "legs": args.legs, "repeat": args.repeat, "database": stack.database.split(":", 1)[0],
        "timing": "tshark on lo (trunk port) + client time.time()",
    }
    report(args.name, figures, meta, units)
    return 0


if __name__ == "__main__":
    sys.exit(main())
