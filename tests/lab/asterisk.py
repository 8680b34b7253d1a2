"""A real Asterisk 22 (Debian sid) in a cached chroot, for integration tests.

Debian bookworm has no asterisk package, so the lab debootstraps sid from the
mirror apt already uses, once, into a cache outside the repository. Each lab
instance writes its own configuration into the chroot, mounts ``proc`` and
``dev``, and runs ``asterisk -f`` as a child process.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CACHE_DIR = Path(os.environ.get("CCBRIDGE_LAB_CACHE", "/var/cache/ccbridge"))
CHROOT_NAME = "asterisk-sid"
COMPLETE_MARKER = ".ccbridge-lab-complete"
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en")
CONF_DIR = Path(__file__).with_name("asterisk-conf")

PHONES = ("1001", "1002", "1003", "1004", "vendas")
AMI_USER = "ccbridge"
DEFAULT_PHONE_PASSWORD = "lab-phone-pw"

BUILD_TIMEOUT = 900.0
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class LabError(RuntimeError):
    """The lab could not be built, started or stopped."""


# --- prerequisites and the mirror ---------------------------------------------------------


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """Return the Debian mirror URI apt on this machine uses.

    Read deb822 ``*.sources`` files first, then classic ``sources.list``
    lines. Security and update suites are skipped: debootstrap wants the
    main archive.
    """
    candidates: list[str] = []
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text(errors="replace").split("\n\n"):
            fields = _deb822_fields(stanza)
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            candidates.extend(fields.get("uris", "").split())
    lists = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
            if match:
                candidates.append(match.group(1))
    for uri in candidates:
        if "security" not in uri and "debian" in uri:
            return uri.rstrip("/")
    if candidates:
        return candidates[0].rstrip("/")
    raise LabError(f"no Debian mirror found in {etc_apt}/sources.list(.d)")


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and key:
            fields[key] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        fields[key] = value.strip()
    return fields


def _can_mount() -> bool:
    # A bind mount onto a private temp dir is the cheapest honest test.
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "a"), Path(tmp, "b")
        src.mkdir()
        dst.mkdir()
        ok = subprocess.run(
            ["mount", "--bind", str(src), str(dst)], capture_output=True
        ).returncode == 0
        if ok:
            subprocess.run(["umount", str(dst)], capture_output=True)
        return ok


def prerequisites(*, need_sipp: bool = True) -> list[str]:
    """Return what is missing to run the lab, as human-readable strings."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("not root (the lab needs chroot and mount)")
        return missing
    if shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        missing.append("no debootstrap and no apt-get to install it")
    if need_sipp and shutil.which("sipp") is None:
        missing.append("no sipp binary (Debian package sip-tester)")
    if shutil.which("mount") is None or not _can_mount():
        missing.append("no mount permission (bind mount failed)")
    if not (_chroot_path() / COMPLETE_MARKER).exists():
        try:
            apt_mirror()
        except LabError as exc:
            missing.append(str(exc))
    return missing


def _chroot_path() -> Path:
    return CACHE_DIR / CHROOT_NAME


# --- the chroot ----------------------------------------------------------------------------


def ensure_chroot(root: Path | None = None) -> Path:
    """Build the Debian sid chroot with Asterisk once; return its path.

    The build goes to a temporary sibling and is renamed into place with a
    completion marker, so a killed build never leaves a half chroot behind.
    """
    root = root or _chroot_path()
    if (root / COMPLETE_MARKER).exists():
        return root
    if shutil.which("debootstrap") is None:
        _apt_install("debootstrap")
    root.parent.mkdir(parents=True, exist_ok=True)
    mirror = apt_mirror()
    build = Path(tempfile.mkdtemp(prefix=f"{root.name}.build-", dir=root.parent))
    started = time.monotonic()
    logger.info("building Asterisk chroot in %s from %s", build, mirror)
    cmd = [
        "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
        "sid", str(build), mirror,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise LabError(f"debootstrap failed ({proc.returncode}):\n{tail}")
        version = subprocess.run(
            ["chroot", str(build), "dpkg-query", "-W", "-f=${Version}", "asterisk"],
            capture_output=True, text=True, check=True,
        ).stdout
        (build / COMPLETE_MARKER).write_text(f"asterisk {version}\n")
        if root.exists():
            # An older, unmarked leftover: move it aside rather than mixing.
            shutil.rmtree(root, ignore_errors=True)
        build.rename(root)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    logger.info("Asterisk chroot ready in %.1fs", time.monotonic() - started)
    return root


def _apt_install(package: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{package} is missing and installing it needs root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", package],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode != 0:
        raise LabError(f"apt-get install {package} failed:\n{proc.stderr[-2000:]}")


# --- the running lab -----------------------------------------------------------------------


@dataclass(frozen=True)
class LabPorts:
    sip: int = 5060
    ami: int = 5038
    bridge: int = 5070
    rtp_start: int = 31000
    rtp_end: int = 31199


class AsteriskLab:
    """Run Asterisk in the cached chroot with the ccbridge test configuration."""

    def __init__(
        self,
        *,
        sip_port: int = 5060,
        ami_port: int = 5038,
        bridge_port: int = 5070,
        rtp_ports: tuple[int, int] = (31000, 31199),
        ami_secret: str | None = None,
        phone_password: str = DEFAULT_PHONE_PASSWORD,
        root: Path | None = None,
    ) -> None:
        self.ports = LabPorts(sip_port, ami_port, bridge_port, *rtp_ports)
        self.host = "127.0.0.1"
        self.ami_username = AMI_USER
        self.ami_secret = ami_secret or secrets.token_hex(12)
        self.phone_password = phone_password
        self.root = root or _chroot_path()
        self.log_path = self.root / "var/log/asterisk/ccbridge-lab-console.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None
        self._lock = threading.RLock()
        self._atexit_registered = False
        self.boot_seconds: float | None = None

    def __repr__(self) -> str:
        return (
            f"<AsteriskLab sip={self.host}:{self.ports.sip} ami={self.host}:{self.ports.ami}"
            f" running={self.running}>"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # --- lifecycle ---

    def start(self) -> None:
        """Build the chroot if needed, configure, mount and boot Asterisk."""
        with self._lock:
            if self.running:
                return
            missing = prerequisites(need_sipp=False)
            if missing:
                raise LabError("cannot start the Asterisk lab: " + "; ".join(missing))
            ensure_chroot(self.root)
            self._register_cleanup()
            self.cleanup_leftovers()
            self.write_config()
            self._mount()
            started = time.monotonic()
            self._spawn()
            try:
                self._wait_fully_booted()
            except BaseException:
                self.stop()
                raise
            self.boot_seconds = time.monotonic() - started
            logger.info("Asterisk lab up in %.1fs (pid %s)", self.boot_seconds, self.pid)

    def stop(self) -> None:
        """Stop Asterisk and unmount; safe to call any number of times."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                self._rx_raw("core stop now", timeout=5.0)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT)
            if self._log_file is not None:
                self._log_file.close()  # type: ignore[attr-defined]
                self._log_file = None
            self._kill_chroot_processes()
            self._unmount()

    def restart(self) -> None:
        """Stop and start Asterisk again (same configuration and ports)."""
        self.stop()
        self.start()

    def __enter__(self) -> AsteriskLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rx(self, command: str, timeout: float = 10.0) -> str:
        """Run an Asterisk CLI command and return its output."""
        proc = self._rx_raw(command, timeout=timeout)
        if proc is None or proc.returncode != 0:
            output = proc.stdout + proc.stderr if proc else "timeout"
            raise LabError(f"asterisk -rx {command!r} failed: {output.strip()}")
        return proc.stdout

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the console and messages logs."""
        parts = []
        for path in (self.log_path, self.root / "var/log/asterisk/messages.log"):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(no log yet)"

    # --- configuration ---

    def write_config(self) -> None:
        """Render the templates in asterisk-conf/ into the chroot."""
        values = {
            "SIP_PORT": self.ports.sip,
            "AMI_PORT": self.ports.ami,
            "BRIDGE_PORT": self.ports.bridge,
            "RTP_START": self.ports.rtp_start,
            "RTP_END": self.ports.rtp_end,
            "AMI_SECRET": self.ami_secret,
            "PHONE_PASSWORD": self.phone_password,
        }
        etc = self.root / "etc/asterisk"
        for template in sorted(CONF_DIR.glob("*.conf")):
            text = render(template.read_text(), values)
            target = etc / template.name
            target.write_text(text)
            os.chmod(target, 0o640)
        # Asterisk resolves the host name to pick its own address; without
        # this it tries DNS, which a closed network answers slowly or not at all.
        hostname = socket.gethostname()
        (self.root / "etc/hosts").write_text(f"127.0.0.1 localhost {hostname}\n")

    # --- internals ---

    def _spawn(self) -> None:
        run_dir = self.root / "run/asterisk"
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("asterisk.ctl", "asterisk.pid"):
            with contextlib.suppress(FileNotFoundError):
                (run_dir / stale).unlink()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "var/log/asterisk/messages.log").unlink()
        self._log_file = open(self.log_path, "wb")  # closed in stop()
        # Not "-U root": that drops capabilities and Asterisk can't open its DB.
        self._proc = subprocess.Popen(
            ["chroot", str(self.root), "asterisk", "-f", "-n"],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # PDEATHSIG fires when the *thread* that forked exits, so only
            # the main thread may use it (asyncio.to_thread workers come and go).
            preexec_fn=_die_with_parent if _in_main_thread() else None,
        )

    def _wait_fully_booted(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                raise LabError(f"Asterisk exited during boot ({code}):\n{self.log_tail()}")
            proc = self._rx_raw("core waitfullybooted", timeout=5.0)
            if proc is not None and proc.returncode == 0 and "fully booted" in proc.stdout:
                return
            last = (proc.stdout + proc.stderr).strip() if proc else "timeout"
            time.sleep(0.2)
        raise LabError(
            f"Asterisk not fully booted after {BOOT_TIMEOUT:.0f}s ({last}):\n{self.log_tail()}"
        )

    def _rx_raw(self, command: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
        if not (self.root / "proc/self").exists():
            return None
        try:
            return subprocess.run(
                ["chroot", str(self.root), "asterisk", "-rx", command],
                capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None

    def _mounts(self) -> list[str]:
        """Return mount points inside the chroot, deepest first."""
        prefix = str(self.root.resolve()) + "/"
        points = []
        with open("/proc/mounts") as f:
            for line in f:
                point = line.split()[1].replace("\\040", " ")
                if point.startswith(prefix):
                    points.append(point)
        return sorted(points, key=len, reverse=True)

    def _mount(self) -> None:
        mounted = self._mounts()
        proc_dir, dev_dir = self.root / "proc", self.root / "dev"
        if str(proc_dir.resolve()) not in mounted:
            _run(["mount", "-t", "proc", "proc", str(proc_dir)])
        if str(dev_dir.resolve()) not in mounted:
            _run(["mount", "--bind", "/dev", str(dev_dir)])

    def _unmount(self) -> None:
        for point in self._mounts():
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                # Busy: detach now, the kernel finishes when the last user goes.
                subprocess.run(["umount", "-l", point], capture_output=True)

    def _chroot_pids(self) -> list[int]:
        root = str(self.root.resolve())
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(entry / "root") == root:
                    pids.append(int(entry.name))
        return pids

    def _kill_chroot_processes(self) -> None:
        pids = self._chroot_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
            time.sleep(0.05)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def cleanup_leftovers(self) -> None:
        """Stop an Asterisk left by a crashed run and remove stale mounts."""
        if self._chroot_pids():
            logger.warning("stopping a leftover Asterisk in %s", self.root)
            if (self.root / "proc/self").exists():
                self._rx_raw("core stop now", timeout=5.0)
            self._kill_chroot_processes()
        self._unmount()

    def _register_cleanup(self) -> None:
        if self._atexit_registered:
            return
        self._atexit_registered = True
        atexit.register(self.stop)
        # SIGTERM would skip atexit; turn it into SystemExit when nobody else handles it.
        if _in_main_thread():
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _exit_on_sigterm)


def render(template: str, values: dict[str, object]) -> str:
    """Replace ``@@NAME@@`` tokens; fail on unknown ones.

    Asterisk's own ``${VAR}`` syntax rules out str.format and string.Template.
    """
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise LabError(f"unknown template token @@{name}@@")
        return str(values[name])

    return re.sub(r"@@([A-Z_]+)@@", substitute, template)


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: Asterisk gets SIGTERM if the test process is killed -9.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)


def hang_up_everything(lab: AsteriskLab, within: float = 10.0) -> None:
    """Hang up every channel in the lab and wait until none is left."""
    if not lab.running:
        return
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if lab.rx("core show channels count").lstrip().startswith("0 active channels"):
            return
        lab.rx("channel request hangup all")
        time.sleep(0.2)
