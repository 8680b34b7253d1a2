"""The sandbox chat over real WebSockets (two daphne processes, Redis channel layer)."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest

from connectycube.xmpp import XmppClient
from tests.sandbox.conftest import APP_ID, AUTH_KEY, DOMAIN

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


class Raw:
    """A hand-driven XMPP-over-WebSocket connection, to check the server frame by frame."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> Raw:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.url, protocols=("xmpp",))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.http.close()

    async def send(self, frame: str) -> None:
        await self.ws.send_str(frame)

    async def recv(self) -> str:
        msg = await asyncio.wait_for(self.ws.receive(), 10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return f"<socket {msg.type.name}>"
        return msg.data

    async def login(self, user: str = "1001-1", password: str = "alicepass") -> str:
        await self.send(f'<open version="1.0" xmlns="{FRAMING}" to="127.0.0.1"/>')
        await self.recv()
        await self.recv()
        payload = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(f'<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">'
                        f"{payload}</auth>")
        return await self.recv()


async def test_it_follows_the_sdk_handshake(sandbox):
    async with Raw(sandbox.chat()) as c:
        assert c.ws.protocol == "xmpp"
        await c.send(f'<open version="1.0" xmlns="{FRAMING}" to="127.0.0.1"/>')
        opened = await c.recv()
        assert opened.startswith(f'<open xmlns="{FRAMING}" from="localhost" id="')
        assert (await c.recv()) == (
            '<stream:features xmlns:stream="http://etherx.jabber.org/streams"><mechanisms '
            'xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>PLAIN</mechanism></mechanisms>'
            "</stream:features>")
        await c.send('<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">'
                     "ADEwMDEtMQBhbGljZXBhc3M=</auth>")
        assert await c.recv() == '<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>'
        await c.send(f'<open version="1.0" xmlns="{FRAMING}" to="127.0.0.1"/>')
        await c.recv()
        assert "<bind xmlns=\"urn:ietf:params:xml:ns:xmpp-bind\"/>" in await c.recv()
        await c.send('<iq type="set" id="b1" xmlns="jabber:client">'
                     '<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>')
        bound = await c.recv()
        assert 'type="result" id="b1"' in bound and "<jid>1001-1@localhost/" in bound
        jid = bound.split("<jid>")[1].split("</jid>")[0]
        await c.send(f'<iq type="set" from="{jid}" id="c1" xmlns="jabber:client">'
                     '<enable xmlns="urn:xmpp:carbons:2"/></iq>')
        assert 'type="result" id="c1" from="localhost"' in await c.recv()
        await c.send('<presence xmlns="jabber:client"/>')
        assert f'from="{jid}" to="1001-1@localhost"' in await c.recv()
        await c.send('<iq id="p1" type="get" to="localhost" xmlns="jabber:client">'
                     '<ping xmlns="urn:xmpp:ping"/></iq>')
        assert 'type="result" id="p1"' in await c.recv()
        await c.send('<iq id="l1" type="get" to="localhost" xmlns="jabber:client">'
                     '<query xmlns="jabber:iq:last"/></iq>')
        assert 'type="result" id="l1"' in await c.recv()
        await c.send('<iq id="u1" type="get" to="localhost" xmlns="jabber:client">'
                     '<query xmlns="urn:example:nothing"/></iq>')
        error = await c.recv()
        assert 'type="error" id="u1"' in error and "<service-unavailable" in error
        await c.send(f'<close xmlns="{FRAMING}"/>')
        assert await c.recv() == f'<close xmlns="{FRAMING}"/>'


async def test_it_accepts_a_session_token_and_refuses_bad_secrets(sandbox):
    async with aiohttp.ClientSession() as http, http.post(
        sandbox.api() + "/session.json",
        json={"application_id": APP_ID, "auth_key": AUTH_KEY,
              "user": {"login": "bob", "password": "bobpass"}},
    ) as resp:
        token = (await resp.json())["session"]["token"]
    async with Raw(sandbox.chat()) as c:
        assert "success" in await c.login("1002-1", token)
    async with Raw(sandbox.chat()) as c:
        assert "<not-authorized/>" in await c.login("1002-1", "alicepass")
    async with Raw(sandbox.chat()) as c:
        assert "<not-authorized/>" in await c.login("1002-999", "bobpass")  # unknown app


@pytest.mark.parametrize(
    ("frame", "condition"),
    [
        ("<open <<< this is not xml", "not-well-formed"),
        ("<message>" + "x" * 300_000 + "</message>", "policy-violation"),
        ('<!DOCTYPE lol [<!ENTITY a "aaaa">]><message>&a;</message>', "not-well-formed"),
        ('<message xmlns="jabber:client" to="1002-1@localhost"/>', "not-authorized"),
    ],
)
async def test_it_ends_bad_streams_with_a_stream_error(sandbox, frame, condition):
    async with Raw(sandbox.chat()) as c:
        await c.send(frame)
        error = await c.recv()
        assert f"<{condition} " in error and "stream:error" in error
        assert await c.recv() == f'<close xmlns="{FRAMING}"/>'
        assert (await c.recv()).startswith("<socket CLOS")
    # The server is still fine afterwards.
    async with Raw(sandbox.chat()) as c:
        assert "success" in await c.login()


async def client(sandbox, index, user_id, password) -> XmppClient:
    c = XmppClient(sandbox.chat(index), DOMAIN, user_id, APP_ID, password)
    await c.connect()
    return c


async def test_it_fans_headlines_out_across_processes_verbatim(sandbox):
    alice = await client(sandbox, 0, 1001, "alicepass")
    bob_a = await client(sandbox, 0, 1002, "bobpass")
    bob_b = await client(sandbox, 1, 1002, "bobpass")
    got_a: asyncio.Queue = asyncio.Queue()
    got_b: asyncio.Queue = asyncio.Queue()
    bob_a.add_message_handler(lambda el, raw: got_a.put_nowait(raw))
    bob_b.add_message_handler(lambda el, raw: got_b.put_nowait(raw))
    try:
        frame = ('<message to="1002-1@localhost" type="headline" id="h1" xmlns="jabber:client">'
                 "<extraParams xmlns=\"jabber:client\"><sdp>v=0\r\ns=-\r\n</sdp></extraParams>"
                 "</message>")
        await alice.send(frame)
        for queue in (got_a, got_b):
            raw = await asyncio.wait_for(queue.get(), 10)
            assert raw == frame.replace("<message ", f'<message from="{alice.jid}" ', 1)
            assert "delay" not in raw
        # A full JID reaches only that resource (here across processes).
        await alice.send(f'<message to="{bob_b.jid}" type="chat" xmlns="jabber:client">'
                         "<body>only b</body></message>")
        assert "only b" in await asyncio.wait_for(got_b.get(), 10)
        # Resource a sees the next bare-JID message, and nothing before it.
        await alice.send('<message to="1002-1@localhost" type="chat" xmlns="jabber:client">'
                         "<body>both</body></message>")
        assert "both" in await asyncio.wait_for(got_a.get(), 10)
    finally:
        for c in (alice, bob_a, bob_b):
            await c.close()


async def test_it_sends_carbons_to_the_senders_other_resources(sandbox):
    alice1 = await client(sandbox, 0, 1001, "alicepass")
    alice2 = await client(sandbox, 1, 1001, "alicepass")
    bob = await client(sandbox, 0, 1002, "bobpass")
    got: asyncio.Queue = asyncio.Queue()
    alice2.add_message_handler(lambda el, raw: got.put_nowait(raw))
    try:
        await alice2.ping()  # answered after the carbons-enable IQ sent before it
        await alice1.send('<message to="1002-1@localhost" type="headline" id="k1" '
                          'xmlns="jabber:client"><body>hi</body></message>')
        raw = await asyncio.wait_for(got.get(), 10)
        assert '<sent xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">' in raw
        assert f'from="{alice1.jid}"' in raw
    finally:
        for c in (alice1, alice2, bob):
            await c.close()
