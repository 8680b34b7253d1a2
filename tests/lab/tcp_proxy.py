"""A loopback TCP proxy that tests can freeze or cut, to fake a hung or dropped link."""

from __future__ import annotations

import asyncio
import contextlib


class _Pipe:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.frozen = False
        self.tasks: list[asyncio.Task[None]] = []

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.frozen:  # a frozen link swallows everything, both ways
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                writer.transport.abort()


class TcpProxy:
    """Forward 127.0.0.1:port to upstream; ``freeze()`` or ``cut()`` current links."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int,
                 host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.upstream = (upstream_host, upstream_port)
        self._pipes: list[_Pipe] = []
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pipe = _Pipe(writer, up_writer)
        self._pipes.append(pipe)
        pipe.tasks = [
            asyncio.create_task(pipe.pump(reader, up_writer)),
            asyncio.create_task(pipe.pump(up_reader, writer)),
        ]

    def freeze(self) -> None:
        """Keep current connections open but pass nothing on them."""
        for pipe in self._pipes:
            pipe.frozen = True

    def cut(self) -> None:
        """Drop every current connection (RST)."""
        pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.abort()
            for task in pipe.tasks:
                task.cancel()
