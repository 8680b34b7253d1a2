"""A small real ConnectyCube-compatible server for the client tests: aiohttp REST + XMPP over WS.

The XMPP side is the sandbox's own Django-free `XmppStream` with an in-process router, so the
client is tested against real frames on a real socket.
"""

from __future__ import annotations

import secrets
from collections import defaultdict

from aiohttp import WSMsgType, web

from connectycube.stanza import bare_jid
from sandbox.xmpp_stream import XmppStream

DOMAIN = "localhost"
APP_ID = 1
AUTH_KEY = "key"


class MemoryRouter:
    """Route stanzas between streams of one process."""

    def __init__(self) -> None:
        self.by_bare: dict[str, set[XmppStream]] = defaultdict(set)

    async def bind(self, stream: XmppStream) -> None:
        self.by_bare[stream.bare].add(stream)

    async def unbind(self, stream: XmppStream) -> None:
        self.by_bare[stream.bare].discard(stream)

    async def route(self, stream: XmppStream, to: str, frame: str, carbon: str | None) -> None:
        targets = self.by_bare.get(bare_jid(to), set())
        for target in list(targets):
            if "/" not in to or target.jid == to:
                await target.deliver(frame)
        if carbon:
            for other in list(self.by_bare.get(stream.bare, set())):
                if other is not stream:
                    await other.deliver_carbon(frame, carbon)


class CubeServer:
    """REST (session, users) and chat on one aiohttp app; users are `{login: (password, id)}`."""

    def __init__(self, users: dict[str, tuple[str, int]]) -> None:
        self.users = users
        self.tokens: dict[str, int] = {}
        self.router = MemoryRouter()
        self.streams: list[XmppStream] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.frames_in: list[str] = []
        self.silent = False  # stop answering pings (keep-alive tests)
        app = web.Application()
        app.router.add_post("/session.json", self.session)
        app.router.add_delete("/session.json", self.delete_session)
        app.router.add_get("/chat", self.chat)
        self.app = app
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}"
        self.chat_url = f"ws://127.0.0.1:{port}/chat"

    async def stop(self) -> None:
        for stream in list(self.streams):
            await stream.disconnected()
        if self.runner is not None:
            await self.runner.cleanup()

    async def authenticate(self, user_id: int, app_id: int, secret: str) -> str | None:
        if app_id != APP_ID:
            return None
        if self.tokens.get(secret) == user_id or any(
            pw == secret and uid == user_id for pw, uid in self.users.values()
        ):
            return DOMAIN
        return None

    async def session(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("auth_key") != AUTH_KEY or body.get("application_id") != APP_ID:
            return web.json_response({"errors": ["Unauthorized"]}, status=401)
        user = body.get("user") or {}
        entry = self.users.get(user.get("login"))
        if entry is None or entry[0] != user.get("password"):
            return web.json_response({"errors": ["Unauthorized"]}, status=401)
        token = secrets.token_hex(20)
        self.tokens[token] = entry[1]
        return web.json_response(
            {"session": {"token": token, "user_id": entry[1], "application_id": APP_ID,
                         "user": {"id": entry[1], "login": user["login"]}}},
            status=201,
        )

    async def delete_session(self, request: web.Request) -> web.Response:
        self.tokens.pop(request.headers.get("CB-Token", ""), None)
        return web.Response(text="")

    async def chat(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("xmpp",))
        await ws.prepare(request)

        stream = XmppStream(DOMAIN, ws.send_str, ws.close, self, self.router)
        self.streams.append(stream)
        self.sockets.append(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                self.frames_in.append(msg.data)
                if self.silent and "urn:xmpp:ping" in msg.data:
                    continue  # a dead link: pings vanish
                await stream.receive(msg.data)
        finally:
            await stream.disconnected()
            self.streams.remove(stream)
            self.sockets.remove(ws)
        return ws

    async def kick_all(self) -> None:
        """Drop every client socket without a goodbye (a server restart)."""
        for stream in list(self.streams):
            await stream.disconnected()
        for ws in list(self.sockets):
            await ws.close()
