"""rtpengine as the C reference for the media plane: the daemon, its ng control protocol, one call.

The daemon is Debian's `rtpengine-daemon` (10.5) in userspace forwarding (`--table=-1`, no kernel
module), in the foreground, logging to its own file, pinned to one CPU with
`sched_setaffinity` (every thread it starts inherits the mask). It runs `--num-threads=1` media
worker threads and `--media-num-threads=1`: one core's worth, like one of our media worker
processes (one asyncio loop); its few housekeeping threads (timers, control) share that CPU.

A call bridges a plain RTP phone leg (RTP/AVP, PCMU) and a WebRTC app leg: `offer` with the
phone's SDP and `transport-protocol: UDP/TLS/RTP/SAVPF`, `ICE: force`, `rtcp-mux: offer`,
`SDES: off` (DTLS-SRTP only, as browsers do) returns the app's offer; `answer` with the app's
answer returns the phone's answer, which carries rtpengine's phone-side port. The phone SDP
names the phone's real port, so no latching is involved. For transcoding, `codec: mask all,
transcode opus` offers the app Opus only and rtpengine converts PCMU <-> Opus.

    python bench/rtpengine.py        # start it, ping it, bridge one call's SDP, stop it
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

BINARY = "/usr/bin/rtpengine"
PR_SET_PDEATHSIG = 1
Bencodable = int | str | bytes | list["Bencodable"] | dict[str, "Bencodable"]


class BencodeError(ValueError):
    pass


def bencode(value: Bencodable) -> bytes:
    if isinstance(value, bool):
        raise BencodeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        # Keys sorted as raw strings, as the spec asks (rtpengine does not mind, others might).
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise BencodeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode one bencoded value; byte strings come back as str (UTF-8, bytes if not)."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise BencodeError(f"trailing data at {end}")
    return value


def _decode(data: bytes, i: int) -> tuple[Any, int]:
    try:
        tag = data[i:i + 1]
        if tag == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1:end]), end + 1
        if tag == b"l":
            items, i = [], i + 1
            while data[i:i + 1] != b"e":
                item, i = _decode(data, i)
                items.append(item)
            return items, i + 1
        if tag == b"d":
            mapping, i = {}, i + 1
            while data[i:i + 1] != b"e":
                key, i = _decode(data, i)
                mapping[key], i = _decode(data, i)
            return mapping, i + 1
        if tag.isdigit():
            colon = data.index(b":", i)
            start = colon + 1
            end = start + int(data[i:colon])
            if end > len(data):
                raise BencodeError("string runs past the end")
            raw = data[start:end]
            try:
                return raw.decode(), end
            except UnicodeDecodeError:
                return raw, end
    except (ValueError, IndexError) as exc:
        raise BencodeError(f"bad bencode at {i}: {exc}") from exc
    raise BencodeError(f"bad bencode at {i}: {tag!r}")


class NgError(RuntimeError):
    """rtpengine answered `result: error` (or something unreadable), or did not answer."""


class NgClient(asyncio.DatagramProtocol):
    """The ng control protocol over UDP: `<cookie> <bencoded dict>` each way, matched by cookie."""

    def __init__(self, reply_s: float = 5.0) -> None:
        self.reply_s = reply_s
        self.transport: asyncio.DatagramTransport | None = None
        self._pending: dict[bytes, asyncio.Future[dict]] = {}
        self._cookies = itertools.count(1)
        # rtpengine caches replies by cookie (for retransmissions): never reuse one, across clients
        # and runs either.
        self._prefix = secrets.token_hex(6).encode() + b"_"

    @classmethod
    async def connect(cls, host: str, port: int, reply_s: float = 5.0) -> NgClient:
        """Open a client; each request fails with NgError after `reply_s` without an answer."""
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(
            lambda: cls(reply_s), remote_addr=(host, port))
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        cookie, _, body = data.partition(b" ")
        future = self._pending.pop(cookie, None)
        if future is None or future.done():
            return  # a late answer to a request that timed out
        try:
            future.set_result(bdecode(body))
        except BencodeError as exc:
            future.set_exception(NgError(f"unreadable ng reply: {exc}"))

    def error_received(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NgError(f"ng socket error: {exc}"))
        self._pending.clear()

    async def request(self, command: str, **params: Bencodable) -> dict:
        """Send one command (keyword names with `_` become `-`); return the reply dict."""
        if self.transport is None:
            raise NgError("ng client is not connected")
        cookie = self._prefix + b"%d" % next(self._cookies)
        message = {"command": command, **{k.replace("_", "-"): v for k, v in params.items()}}
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._pending[cookie] = future
        self.transport.sendto(cookie + b" " + bencode(message))
        try:
            reply = await asyncio.wait_for(future, self.reply_s)
        except TimeoutError:
            raise NgError(f"rtpengine did not answer {command!r} within {self.reply_s} s") from None
        finally:
            self._pending.pop(cookie, None)
        if not isinstance(reply, dict):
            raise NgError(f"ng reply to {command!r} is not a dict: {reply!r}")
        if reply.get("result") == "error":
            raise NgError(f"rtpengine refused {command!r}: {reply.get('error-reason', reply)}")
        return reply

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# ---------------------------------------------------------------- the daemon


def available() -> bool:
    return os.access(BINARY, os.X_OK) or shutil.which("rtpengine") is not None


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rtpengine:
    """One rtpengine daemon on loopback, pinned to `cpu`, for the length of a benchmark."""

    def __init__(self, log_path: Path, cpu: int | None = 0, threads: int = 1,
                 port_min: int = 30000, port_max: int = 32767) -> None:
        self.log_path = log_path
        self.cpu = cpu
        self.threads = threads
        self.port_min, self.port_max = port_min, port_max
        self.ng_port = free_udp_port()
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        binary = BINARY if os.access(BINARY, os.X_OK) else shutil.which("rtpengine") or BINARY
        return [
            binary, "--foreground", "--log-stderr", "--log-level=5", "--table=-1",
            "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{self.ng_port}",
            f"--port-min={self.port_min}", f"--port-max={self.port_max}",
            f"--num-threads={self.threads}", f"--media-num-threads={self.threads}",
            # Calls are deleted at once and never time out under us.
            "--delete-delay=0", "--timeout=600", "--silent-timeout=600", "--offer-timeout=600",
            # No "no Redis" warnings, no config file from /etc (the packaged one enables things).
            "--config-file=none",
        ]

    def launch(self) -> None:
        """Start the daemon (see `start`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # open as long as the daemon runs
        cpu = self.cpu

        def prepare() -> None:
            # In the child before exec: every thread rtpengine creates inherits the mask.
            if cpu is not None and (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(0, {cpu})
            # The daemon dies with the thread that started it, should a run be killed.
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=prepare)

    async def start(self, wait_s: float = 10.0) -> None:
        """Start the daemon and wait until it answers ping; raise NgError if it does not."""
        self.launch()
        assert self.process is not None
        deadline = time.monotonic() + wait_s
        client = await NgClient.connect("127.0.0.1", self.ng_port, reply_s=0.5)
        try:
            while True:
                if self.process.poll() is not None:
                    raise NgError(f"rtpengine exited with {self.process.returncode}; "
                                  f"log: {self.log_tail()}")
                try:
                    reply = await client.request("ping")
                    if reply.get("result") == "pong":
                        return
                except NgError:
                    pass
                if time.monotonic() > deadline:
                    raise NgError(f"rtpengine did not answer ping in {wait_s} s; log: {self.log_tail()}")
                await asyncio.sleep(0.1)
        finally:
            client.close()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def cpu_seconds(self) -> float:
        """User + system CPU of the daemon, all its threads (/proc/<pid>/stat fields 14 and 15)."""
        with open(f"/proc/{self.pid}/stat") as f:
            # The command name (field 2) is in parentheses and may hold spaces: split after it.
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def threads_running(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))


# ---------------------------------------------------------------- one bridged call


def phone_sdp(port: int, host: str = "127.0.0.1", session: int = 1) -> str:
    """A plain SIP phone's offer: PCMU only, RTP/AVP, 20 ms."""
    return (f"v=0\r\no=phone {session} 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n")


def sdp_audio_port(sdp: str) -> int:
    match = re.search(r"^m=audio (\d+) ", sdp, re.MULTILINE)
    if match is None:
        raise NgError(f"no audio line in rtpengine's SDP: {sdp!r}")
    return int(match.group(1))


def offer_flags(transcode: bool) -> dict[str, Bencodable]:
    """What turns the phone's plain RTP offer into a WebRTC offer for the app."""
    flags: dict[str, Bencodable] = {
        "transport-protocol": "UDP/TLS/RTP/SAVPF",
        "ICE": "force",
        "DTLS": "passive",  # rtpengine offers actpass; the aiortc answerer takes the client role
        "SDES": ["off"],
        "rtcp-mux": ["offer"],
        "replace": ["origin", "session-connection"],
    }
    if transcode:
        # The app sees Opus only; rtpengine still takes PCMU from the phone and converts.
        flags["codec"] = {"mask": ["all"], "transcode": ["opus"]}
    return flags


class RtpengineCall:
    """One bridged call: phone (plain RTP) <-> rtpengine <-> app (WebRTC)."""

    def __init__(self, client: NgClient, call_id: str) -> None:
        self.client = client
        self.call_id = call_id
        self.phone_tag = f"{call_id}-phone"
        self.app_tag = f"{call_id}-app"

    async def offer(self, phone_port: int, transcode: bool = False) -> str:
        """Give rtpengine the phone's offer; return the WebRTC offer for the app."""
        reply = await self.client.request(
            "offer", call_id=self.call_id, from_tag=self.phone_tag, sdp=phone_sdp(phone_port),
            **offer_flags(transcode))
        return reply["sdp"]

    async def answer(self, app_answer: str) -> int:
        """Give rtpengine the app's answer; return rtpengine's port for the phone."""
        reply = await self.client.request(
            "answer", call_id=self.call_id, from_tag=self.phone_tag, to_tag=self.app_tag,
            sdp=app_answer, replace=["origin", "session-connection"])
        return sdp_audio_port(reply["sdp"])

    async def delete(self) -> None:
        await self.client.request("delete", call_id=self.call_id, from_tag=self.phone_tag)


async def _demo() -> None:
    engine = Rtpengine(Path("/tmp/rtpengine-demo.log"))
    await engine.start()
    try:
        client = await NgClient.connect("127.0.0.1", engine.ng_port)
        call = RtpengineCall(client, "demo")
        print(await call.offer(40000, transcode=True))
        print(await client.request("query", call_id="demo"))
        await call.delete()
        client.close()
        print("threads:", engine.threads_running(), "cpu s:", engine.cpu_seconds())
    finally:
        engine.stop()


if __name__ == "__main__":
    asyncio.run(_demo())
