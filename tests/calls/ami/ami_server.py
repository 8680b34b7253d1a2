"""A tiny AMI server on a real loopback socket, for protocol edge cases."""

from __future__ import annotations

import asyncio
import contextlib

EOL = "\r\n"


class FakeAmi:
    """Speak enough AMI for the client: Login, Ping, Originate, raw pushes."""

    def __init__(self, secret: str = "s3cret-value") -> None:
        self.secret = secret
        self.actions: list[dict[str, str]] = []
        self.answer_pings = True
        self.writers: list[asyncio.StreamWriter] = []
        self.logins = 0
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def push(self, raw: str) -> None:
        """Send raw text to every connected client."""
        for writer in self.writers:
            writer.write(raw.encode())

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                block = (await reader.readuntil(b"\r\n\r\n")).decode()
                action: dict[str, str] = {}
                for line in block.split(EOL):
                    key, sep, value = line.partition(": ")
                    if sep:
                        action[key] = value
                self.actions.append(action)
                self._answer(writer, action)

    def _answer(self, writer: asyncio.StreamWriter, action: dict[str, str]) -> None:
        name, aid = action.get("Action", ""), action.get("ActionID", "")

        def reply(**headers: str) -> None:
            lines = [f"{k}: {v}" for k, v in headers.items()] + [f"ActionID: {aid}"]
            writer.write((EOL.join(lines) + EOL + EOL).encode())

        if name == "Login":
            if action.get("Secret") == self.secret:
                self.logins += 1
                reply(Response="Success", Message="Authentication accepted")
                writer.write(b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: ok\r\n\r\n")
            else:
                reply(Response="Error", Message="Authentication failed")
        elif name == "Ping":
            if self.answer_pings:
                reply(Response="Success", Ping="Pong", Timestamp="1.0")
        elif name == "Originate":
            reply(Response="Success", Message="Originate successfully queued")
            reply(Event="OriginateResponse", Response="Success", Channel="Local/1@x-1;1",
                  Reason="4", Uniqueid="1.1")
        elif name == "Hangup":
            reply(Response="Error", Message="No such channel")
        elif name == "Silent":
            pass
        else:
            reply(Response="Success", Message=f"{name} done")
