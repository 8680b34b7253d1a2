"""Debian's baresip as a real SIP phone in the Asterisk lab.

Each instance gets its own config directory (``config`` and ``accounts``),
listens on loopback only, plays a WAV file as its microphone and records
what it hears, and is driven over ``ctrl_tcp`` (netstring-framed JSON).

Debian ships baresip 1.0.0, whose ``aufile`` module is a source only; the
``sndfile`` filter records instead: it dumps every call's decoded audio to
``<record_dir>/dump-<time>-dec.wav`` (and what it sent to ``...-enc.wav``).
No audio player module is loaded, so nothing touches a sound card.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from tests.lab.sipp import free_tcp_port, free_udp_port

START_TIMEOUT = 10.0
COMMAND_TIMEOUT = 5.0
MAX_NETSTRING = 1 << 20


class BaresipError(RuntimeError):
    """baresip could not be started, controlled or did not register."""


def write_tone_wav(path: Path, seconds: float = 10.0, freq: float = 400.0,
                   rate: int = 8000) -> Path:
    """Write a 16-bit mono PCM sine WAV, the format baresip's aufile source reads."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Return a 16-bit mono WAV's samples (float, -1..1) and its sample rate."""
    with wave.open(str(path), "rb") as src:
        if src.getsampwidth() != 2:
            raise BaresipError(f"{path}: expected 16-bit samples, got {src.getsampwidth() * 8}")
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
        channels, rate = src.getnchannels(), src.getframerate()
    return data[::channels].astype(np.float64) / 32768.0, rate


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """Return the frequency (Hz) of the strongest FFT bin, DC excluded."""
    if len(samples) < rate // 10:
        raise BaresipError(f"too little audio to analyse: {len(samples)} samples")
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * rate / len(samples))


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class NetstringReader:
    """Split a byte stream into netstring payloads; reject malformed framing."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            head, sep, _ = self._buf.partition(b":")
            if not sep:
                if len(head) > 10 or (head and not head.isdigit()):
                    raise BaresipError(f"bad netstring header: {head[:20]!r}")
                return out
            if not head.isdigit() or int(head) > MAX_NETSTRING:
                raise BaresipError(f"bad netstring header: {head[:20]!r}")
            size = int(head)
            start = len(head) + 1
            if len(self._buf) < start + size + 1:
                return out
            if self._buf[start + size:start + size + 1] != b",":
                raise BaresipError("netstring not terminated by ','")
            out.append(self._buf[start:start + size])
            self._buf = self._buf[start + size + 1:]


class Baresip:
    """One baresip phone registered to the lab Asterisk; always killed by ``close()``."""

    def __init__(
        self,
        user: str,
        password: str,
        registrar: tuple[str, int],
        *,
        answer: bool = True,
        source_wav: Path | None = None,
        workdir: Path | None = None,
    ) -> None:
        if shutil.which("baresip") is None:
            raise BaresipError("baresip is missing (Debian package baresip)")
        self.user = user
        self._password = password
        self.registrar = registrar
        self.answer = answer
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"ccbridge-baresip-{user}-"))
        self._own_workdir = workdir is None
        self.config_dir = self.workdir / "config"
        self.record_dir = self.workdir / "recordings"
        self.log_path = self.workdir / "baresip.log"
        self.source_wav = source_wav or self.workdir / "source.wav"
        self.sip_port = free_udp_port()
        self.ctrl_port = free_tcp_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader = NetstringReader()
        self._token = 0
        self.events: list[dict[str, object]] = []

    def __repr__(self) -> str:
        return (
            f"<Baresip {self.user} sip=127.0.0.1:{self.sip_port}"
            f" ctrl=127.0.0.1:{self.ctrl_port} running={self.running}>"
        )

    @property
    def aor(self) -> str:
        host, port = self.registrar
        return f"sip:{self.user}@{host}:{port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle ---

    def start(self) -> None:
        """Write the config, start baresip and connect to its control port."""
        if self._proc is not None:
            return
        self.write_config()
        if not self.source_wav.exists():
            write_tone_wav(self.source_wav)
        log = open(self.log_path, "wb")  # the child writes to it; closed below
        try:
            self._proc = subprocess.Popen(
                ["baresip", "-f", str(self.config_dir)],
                cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        try:
            self._connect()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill baresip and drop its control connection; safe to call repeatedly."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5.0)

    def cleanup(self) -> None:
        """Close, then remove the work directory if this instance made it."""
        self.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Baresip:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # --- configuration ---

    def write_config(self) -> None:
        """Write ``config`` and ``accounts`` for loopback-only, file-based audio."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "poll_method": "epoll",
            # Without it baresip advertises the machine's other interface.
            "net_interface": "127.0.0.1",
            "sip_listen": f"127.0.0.1:{self.sip_port}",
            "ctrl_tcp_listen": f"127.0.0.1:{self.ctrl_port}",
            "audio_source": f"aufile,{self.source_wav}",
            "ausrc_srate": "8000",
            "auplay_srate": "8000",
            # No jitter buffer: it lost the whole received stream about 1 run in 4
            # when Asterisk's direct-media re-INVITE moved the RTP mid-call.
            "jitter_buffer_delay": "0-0",
            "snd_path": str(self.record_dir),
            "module_path": "/usr/lib/baresip/modules",
        }
        lines = [f"{key}\t{value}" for key, value in config.items()]
        lines += [f"module\t{name}.so" for name in ("g711", "aufile", "sndfile", "ctrl_tcp")]
        lines += ["module_tmp\taccount.so", "module_app\tmenu.so"]
        (self.config_dir / "config").write_text("\n".join(lines) + "\n")
        mode = "auto" if self.answer else "manual"
        account = (
            f"<{self.aor};transport=udp>;auth_user={self.user};auth_pass={self._password}"
            f";answermode={mode};regint=300;audio_codecs=PCMU,PCMA\n"
        )
        accounts = self.config_dir / "accounts"
        accounts.write_text(account)
        accounts.chmod(0o600)

    # --- control ---

    def command(self, command: str, params: str = "", timeout: float = COMMAND_TIMEOUT) -> str:
        """Run a menu command over ctrl_tcp and return its output text."""
        if self._sock is None:
            raise BaresipError("baresip is not running")
        self._token += 1
        token = str(self._token)
        payload = {"command": command, "params": params, "token": token}
        self._sock.sendall(netstring(json.dumps(payload).encode()))
        deadline = time.monotonic() + timeout
        while True:
            for message in self._receive(deadline):
                if message.get("response") and message.get("token") == token:
                    if not message.get("ok", False):
                        raise BaresipError(f"baresip {command!r} failed: {message.get('data')}")
                    return str(message.get("data", ""))
                if message.get("event"):
                    self.events.append(message)

    def registered(self) -> bool:
        """Ask baresip (not its events: they may predate us) whether it is registered."""
        return any(
            self.user in line and " OK" in line
            for line in _strip_ansi(self.command("reginfo")).splitlines()
        )

    def wait_registered(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.registered():
            if time.monotonic() > deadline:
                raise BaresipError(
                    f"{self.user} not registered after {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def dial(self, uri: str) -> str:
        return self.command("dial", uri)

    def hangup(self) -> str:
        return self.command("hangup")

    def recordings(self, direction: str = "dec") -> list[Path]:
        """Return the WAV files sndfile wrote: ``dec`` is heard, ``enc`` is sent."""
        return sorted(self.record_dir.glob(f"dump-*-{direction}.wav"))

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no baresip log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # --- internals ---

    def _connect(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                raise BaresipError(f"baresip exited ({code}):\n{self.log_tail()}")
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1.0)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(
                        f"baresip control port not open after {START_TIMEOUT:.0f}s:\n"
                        f"{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def _receive(self, deadline: float) -> list[dict[str, object]]:
        assert self._sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BaresipError("baresip did not answer in time")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise BaresipError("baresip did not answer in time") from None
        if not data:
            raise BaresipError(f"baresip closed the control connection:\n{self.log_tail()}")
        messages = []
        for raw in self._reader.feed(data):
            try:
                message = json.loads(raw)
            except ValueError as exc:
                raise BaresipError(f"bad JSON from baresip: {raw[:200]!r}") from exc
            if isinstance(message, dict):
                messages.append(message)
        return messages


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
