"""Run the SIPp scenarios in tests/sipp/ against the Asterisk lab.

Each run gets its own working directory (SIPp writes its logs to the cwd
and the uac scenario streams ``audio.wav`` from there), free ports, and is
always killed when the test ends.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "sipp"
DEFAULT_TIMEOUT = 30.0


class SippError(RuntimeError):
    """SIPp could not be run, or a scenario did not finish as expected."""


def free_udp_port() -> int:
    """Return a UDP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_tcp_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_tone_wav(path: Path, seconds: float = 3.0, freq: int = 1000) -> Path:
    """Write an 8 kHz mono mu-law WAV tone, the format SIPp's rtp_stream sends."""
    if shutil.which("sox") is None:
        raise SippError("sox is missing (Debian package sox)")
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(path),
         "synth", str(seconds), "sine", str(freq), "vol", "0.5"],
        check=True, capture_output=True,
    )
    return path


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str
    workdir: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        return (
            f"sipp exited {self.returncode}\n--- stderr ---\n{self.stderr[-2000:]}"
            f"\n--- errors ---\n{self.errors[-3000:]}"
        )


@dataclass
class SippProcess:
    """A SIPp running in the background; ``wait()`` or ``kill()`` it."""

    proc: subprocess.Popen[str]
    workdir: Path
    scenario: str
    port: int
    media_port: int = 0  # where this phone's RTP arrives (a test may capture it)
    _result: SippResult | None = field(default=None, repr=False)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> SippResult:
        """Wait for SIPp to end; kill it and raise SippError on timeout."""
        if self._result is not None:
            return self._result
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SippError(
                f"sipp {self.scenario} still running after {timeout:.0f}s\n"
                f"{self._collect('', '').describe()}"
            ) from None
        self._result = self._collect(stdout or "", stderr or "")
        return self._result

    def kill(self) -> None:
        """Stop SIPp now; safe to call any number of times."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # SIPp: quit after dumping stats
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5.0)
        with contextlib.suppress(Exception):
            self.proc.communicate(timeout=1.0)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def _collect(self, stdout: str, stderr: str) -> SippResult:
        errors = "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("*errors.log"))
        )
        code = self.proc.returncode if self.proc.returncode is not None else -1
        return SippResult(code, stdout, stderr, errors, self.workdir)


class Sipp:
    """Start SIPp scenarios as lab phones against an Asterisk at host:sip_port."""

    def __init__(self, host: str, sip_port: int, phone_password: str,
                 workroot: Path | None = None) -> None:
        if shutil.which("sipp") is None:
            raise SippError("sipp is missing (Debian package sip-tester)")
        self.host = host
        self.sip_port = sip_port
        self.phone_password = phone_password
        self._workroot = workroot or Path(tempfile.mkdtemp(prefix="ccbridge-sipp-"))
        self._procs: list[SippProcess] = []
        self._tone: Path | None = None

    def start(
        self,
        scenario: str,
        *,
        service: str,
        phone: str | None = None,
        port: int | None = None,
        calls: int = 1,
        rate: float = 1.0,
        variables: dict[str, object] | None = None,
        extra: list[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> SippProcess:
        """Start ``tests/sipp/<scenario>.xml`` in the background.

        ``phone`` authenticates as that lab phone (-au/-ap); ``service`` is
        the number called (uac) or the user part (register). ``port`` is the
        local SIP port, which a uas must share with its registration.
        """
        source = SCENARIO_DIR / f"{scenario}.xml"
        if not source.exists():
            raise SippError(f"no such SIPp scenario: {source}")
        port = port or free_udp_port()
        media_port = free_udp_port()
        workdir = Path(tempfile.mkdtemp(prefix=f"{scenario}-", dir=self._workroot))
        shutil.copy(source, workdir / source.name)
        shutil.copy(self._tone_wav(), workdir / "audio.wav")
        cmd = [
            "sipp", f"{self.host}:{self.sip_port}",
            "-sf", source.name, "-s", service,
            "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
            "-mp", str(media_port), "-cp", str(free_udp_port()),
            "-m", str(calls), "-r", str(rate), "-l", str(max(calls, 1)),
            "-trace_err", "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
            "-max_recv_loops", "1000",
        ]
        if phone is not None:
            cmd += ["-au", phone, "-ap", self.phone_password]
        for name, value in (variables or {}).items():
            cmd += ["-set", name, str(value)]
        cmd += extra or []
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        handle = SippProcess(proc, workdir, scenario, port, media_port)
        self._procs.append(handle)
        return handle

    def run(self, scenario: str, *, timeout: float = DEFAULT_TIMEOUT, **kwargs: object) -> SippResult:
        """Run a scenario to the end and return its result."""
        return self.start(scenario, timeout=timeout, **kwargs).wait(timeout + 5.0)  # type: ignore[arg-type]

    def register(self, phone: str, port: int, timeout: float = 10.0) -> None:
        """Register a lab phone with its contact on 127.0.0.1:port."""
        result = self.run("register", service=phone, phone=phone, port=port, timeout=timeout)
        if not result.ok:
            raise SippError(f"registering {phone} failed: {result.describe()}")

    def answer_as(self, phone: str, scenario: str = "uas", *, ring_ms: int = 200,
                  timeout: float = DEFAULT_TIMEOUT, calls: int = 1) -> SippProcess:
        """Register ``phone`` and start a uas scenario on its contact port."""
        port = free_udp_port()
        self.register(phone, port)
        # SIPp refuses -set for globals a scenario does not declare.
        variables = {"ring_ms": ring_ms} if scenario == "uas" else {}
        return self.start(scenario, service=phone, port=port, variables=variables,
                          extra=["-rtp_echo"] if scenario == "uas" else [],
                          timeout=timeout, calls=calls)

    def call(self, phone: str, number: str, *, hold_ms: int = 1000,
             scenario: str = "uac", timeout: float = DEFAULT_TIMEOUT,
             calls: int = 1, rate: float = 1.0) -> SippProcess:
        """Start a call from lab phone ``phone`` to ``number``."""
        return self.start(scenario, service=number, phone=phone, calls=calls, rate=rate,
                          variables={"hold_ms": hold_ms, "caller": phone}, timeout=timeout)

    def close(self) -> None:
        """Kill every SIPp started here and remove the working directories."""
        for handle in self._procs:
            handle.kill()
        self._procs.clear()
        shutil.rmtree(self._workroot, ignore_errors=True)

    def __enter__(self) -> Sipp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tone_wav(self) -> Path:
        if self._tone is None:
            self._tone = make_tone_wav(self._workroot / "tone.wav")
        return self._tone


def wait_until(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll a callable until it returns truthy or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False
