"""A scripted SIP peer on a raw UDP socket, for conformance tests of sip."""

from __future__ import annotations

import asyncio
import secrets

from sip.message import SipRequest, SipResponse, parse

Addr = tuple[str, int]

SDP = (
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na={direction}\r\n"
)
OUR_SDP = (
    "v=0\r\no=ccbridge 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)


def sdp(direction: str = "sendrecv") -> str:
    return SDP.format(direction=direction)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[tuple[bytes, Addr]]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        self.queue.put_nowait((data, (addr[0], addr[1])))


class Peer:
    """One UDP socket that sends hand-written SIP and receives parsed messages."""

    def __init__(self, target: Addr) -> None:
        self.target = target
        self.queue: asyncio.Queue[tuple[bytes, Addr]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.tag = secrets.token_hex(4)
        self.call_id = secrets.token_hex(8) + "@peer"
        self.last_source: Addr | None = None

    async def start(self) -> Peer:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self.queue), local_addr=("127.0.0.1", 0))
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, data: str | bytes | SipRequest | SipResponse, addr: Addr | None = None) -> None:
        if isinstance(data, str):
            data = data.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        elif not isinstance(data, bytes):
            data = bytes(data)
        assert self.transport is not None
        self.transport.sendto(data, addr or self.target)

    async def recv(self, within: float = 3.0) -> SipRequest | SipResponse:
        data, source = await asyncio.wait_for(self.queue.get(), within)
        self.last_source = source
        return parse(data)

    async def expect(self, what: int | str, within: float = 3.0,
                     skip: tuple[int | str, ...] = ()) -> SipRequest | SipResponse:
        """Return the next message that is ``what`` (status or method); fail on anything else
        that is not in ``skip``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            message = await self.recv(max(0.01, deadline - loop.time()))
            key = message.status if isinstance(message, SipResponse) else message.method
            if key == what:
                return message
            assert key in skip, f"expected {what}, got {message!r}\n{bytes(message).decode()}"

    async def silence(self, seconds: float, allow: tuple[int | str, ...] = ()) -> list:
        """Collect what arrives for ``seconds``; fail on anything not in ``allow``."""
        seen = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                message = await self.recv(left)
            except TimeoutError:
                break
            key = message.status if isinstance(message, SipResponse) else message.method
            assert key in allow, f"unexpected {message!r}"
            seen.append(message)
        return seen

    # --- builders ---------------------------------------------------------------------------

    def request(self, method: str, *, cseq: int = 1, branch: str | None = None,
                to_tag: str | None = None, body: str = "", uri: str | None = None,
                call_id: str | None = None, contact_port: int | None = None,
                cseq_method: str | None = None, via: str | None = None,
                extra: str = "") -> str:
        host, port = self.target
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        to = f"<sip:ccbridge@{host}:{port}>" + (f";tag={to_tag}" if to_tag else "")
        ctype = "Content-Type: application/sdp\n" if body else ""
        via = via or f"SIP/2.0/UDP 127.0.0.1:{self.port};rport;branch={branch}"
        return (
            f"{method} {uri or f'sip:vendas@{host}:{port}'} SIP/2.0\n"
            f"Via: {via}\n"
            f"Max-Forwards: 70\n"
            f"From: \"Peer\" <sip:1001@127.0.0.1>;tag={self.tag}\n"
            f"To: {to}\n"
            f"Call-ID: {call_id or self.call_id}\n"
            f"CSeq: {cseq} {cseq_method or method}\n"
            f"Contact: <sip:peer@127.0.0.1:{contact_port or self.port}>\n"
            f"{extra}{ctype}Content-Length: {len(body.encode())}\n\n{body}"
        )

    def ack_for(self, response: SipResponse, *, branch: str | None = None,
                uri: str | None = None) -> str:
        """An ACK for ``response`` to our INVITE; a new branch unless given (2xx)."""
        number = response.cseq[0]
        return self.request("ACK", cseq=number, branch=branch, to_tag=response.to.tag, uri=uri)

    def response(self, request: SipRequest, status: int, *, tag: str | None = None,
                 body: str = "", extra: str = "", reason: str = "X") -> str:
        """A response to ``request`` (which the stack sent us)."""
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {v}" for v in request.headers.get_all("Via")]
        to = request.headers.get("To") or ""
        if tag and ";tag=" not in to:
            to += f";tag={tag}"
        lines += [f"From: {request.headers.get('From')}", f"To: {to}",
                  f"Call-ID: {request.call_id}", f"CSeq: {request.headers.get('CSeq')}"]
        if 100 < status < 300 and request.method == "INVITE":
            lines.append(f"Contact: <sip:peer@127.0.0.1:{self.port}>")
        if body:
            lines.append("Content-Type: application/sdp")
        head = "\n".join(lines) + "\n" + extra
        return f"{head}Content-Length: {len(body.encode())}\n\n{body}"
