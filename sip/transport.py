"""One UDP socket for everything: requests go out from the listening socket.

Asterisk identifies the trunk by the source IP:port of what it receives, so
the edge must never send from an ephemeral socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .message import MAX_MESSAGE_SIZE

logger = logging.getLogger(__name__)

Addr = tuple[str, int]


class UdpTransport(asyncio.DatagramProtocol):
    """Deliver datagrams to ``on_datagram``; send from the same socket."""

    def __init__(self, on_datagram: Callable[[bytes, Addr], None]) -> None:
        self._on_datagram = on_datagram
        self._transport: asyncio.DatagramTransport | None = None
        self.local_address: Addr | None = None

    @classmethod
    async def listen(cls, host: str, port: int,
                     on_datagram: Callable[[bytes, Addr], None]) -> UdpTransport:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(on_datagram), local_addr=(host, port))
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.local_address = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[override]
        if not data.strip():
            return  # RFC 5626 CRLF keep-alives
        if len(data) > MAX_MESSAGE_SIZE:
            logger.warning("dropping %d-byte datagram from %s:%s", len(data), addr[0], addr[1])
            return
        try:
            self._on_datagram(data, (addr[0], addr[1]))
        except Exception:
            # One bad message must never take the socket down.
            logger.exception("error handling a datagram from %s:%s", addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the transactions' timers handle the loss.
        logger.debug("UDP error: %s", exc)

    def send(self, data: bytes, addr: Addr) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("SIP transport is closed")
        self._transport.sendto(data, addr)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
