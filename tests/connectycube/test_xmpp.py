"""Tests for connectycube.xmpp against a real WebSocket server running the sandbox stream."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectycube.errors import AuthError, ConnectyCubeUnavailable
from connectycube.xmpp import ChatNotConnected, ChatState, XmppClient
from tests.connectycube.server import APP_ID, DOMAIN, CubeServer

USERS = {"alice": ("alicepass", 1001), "bob": ("bobpass", 1002)}


@pytest.fixture
async def server():
    srv = CubeServer(USERS)
    await srv.start()
    yield srv
    await srv.stop()


def client(server, user_id, password, **kw) -> XmppClient:
    return XmppClient(server.chat_url, DOMAIN, user_id, APP_ID, password, **kw)


async def wait_for(predicate, what: str, limit: float = 10.0):
    """Poll until predicate() is true; fail with `what` otherwise."""
    for _ in range(int(limit / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"gave up waiting for {what}")


async def test_it_logs_in_binds_and_enables_carbons(server, caplog):
    caplog.set_level(logging.DEBUG)
    alice = client(server, 1001, "alicepass")
    await alice.connect()
    try:
        assert alice.state == ChatState.ONLINE
        assert alice.jid.startswith("1001-1@localhost/")
        await alice.ping()
        await wait_for(lambda: server.streams and server.streams[0].carbons, "carbons enabled")
        # The SASL payload is base64("\0" "1001-1" "\0" "alicepass"), as the SDK sends it.
        assert any("ADEwMDEtMQBhbGljZXBhc3M=" in f for f in server.frames_in)
        assert "alicepass" not in caplog.text
    finally:
        await alice.close()
    assert alice.state == ChatState.CLOSED
    assert server.frames_in[-1] == '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>'
    await alice.close()  # idempotent


async def test_it_accepts_a_session_token_as_password(server):
    server.tokens["tok"] = 1002
    bob = client(server, 1002, "tok")
    await bob.connect()
    try:
        # It should be online and bound as user 1002: "tok" is not Bob's password.
        assert bob.state == ChatState.ONLINE
        assert bob.jid.startswith("1002-1@localhost/")
    finally:
        await bob.close()


async def test_it_refuses_a_bad_password_with_a_clear_error(server):
    alice = client(server, 1001, "wrong")
    with pytest.raises(AuthError) as info:
        await alice.connect()
    assert "refused the login of user 1001 for app 1: not-authorized" in str(info.value)
    assert "wrong" not in str(info.value)
    assert alice.state == ChatState.CLOSED


async def test_it_reports_an_unreachable_server():
    alice = XmppClient("ws://127.0.0.1:9/chat", DOMAIN, 1001, APP_ID, "x")
    with pytest.raises(ConnectyCubeUnavailable):
        await alice.connect()


async def test_it_delivers_messages_with_crlf_and_from(server):
    alice, bob = client(server, 1001, "alicepass"), client(server, 1002, "bobpass")
    await alice.connect()
    await bob.connect()
    got: list = []
    bob.add_message_handler(lambda el, raw: got.append((el, raw)))
    try:
        await alice.send(
            '<message to="1002-1@localhost" type="headline" id="m1" xmlns="jabber:client">'
            "<body>v=0\r\ns=-\r\n</body></message>"
        )
        await wait_for(lambda: got, "bob receives the message")
        element, raw = got[0]
        assert element.get("from") == alice.jid
        assert "v=0\r\ns=-\r\n" in raw
    finally:
        await alice.close()
        await bob.close()


async def test_it_answers_server_pings_and_unknown_iqs(server):
    alice, bob = client(server, 1001, "alicepass"), client(server, 1002, "bobpass")
    await alice.connect()
    await bob.connect()
    try:
        # Alice pings Bob's full JID: Bob's client must answer (routed through the server).
        reply = await alice.iq(
            f'<iq type="get" id="p1" to="{bob.jid}" xmlns="jabber:client">'
            '<ping xmlns="urn:xmpp:ping"/></iq>', "p1")
        assert reply.get("type") == "result"
        reply = await alice.iq(
            f'<iq type="get" id="q1" to="{bob.jid}" xmlns="jabber:client">'
            '<query xmlns="urn:example:unknown"/></iq>', "q1")
        assert reply.get("type") == "error"
    finally:
        await alice.close()
        await bob.close()


async def test_it_reconnects_after_the_server_drops_it(server):
    states: list[ChatState] = []
    alice = client(server, 1001, "alicepass", backoff_initial=0.05)
    alice.add_state_listener(states.append)
    await alice.connect()
    try:
        await server.kick_all()
        await wait_for(lambda: states[-1] == ChatState.ONLINE and ChatState.RECONNECTING in states,
                       "reconnect")
        await alice.ping()
    finally:
        await alice.close()


async def test_it_reconnects_when_keepalive_pings_go_unanswered(server):
    states: list[ChatState] = []
    alice = client(server, 1001, "alicepass", keepalive_interval=0.1, ping_timeout=0.2,
                   backoff_initial=0.05)
    alice.add_state_listener(states.append)
    await alice.connect()
    try:
        server.silent = True
        await wait_for(lambda: ChatState.RECONNECTING in states, "keep-alive failure")
        server.silent = False
        await wait_for(lambda: states[-1] == ChatState.ONLINE, "back online")
    finally:
        await alice.close()


async def test_it_refuses_to_send_when_offline(server):
    alice = client(server, 1001, "alicepass")
    with pytest.raises(ChatNotConnected):
        await alice.send("<presence/>")


async def test_it_survives_a_bad_frame_from_the_server(server):
    alice, bob = client(server, 1001, "alicepass"), client(server, 1002, "bobpass")
    await alice.connect()
    await bob.connect()
    got: list = []
    bob.add_message_handler(lambda el, raw: got.append(raw))
    try:
        ws = server.sockets[-1]
        await ws.send_str("<message <<<")
        await alice.send('<message to="1002-1@localhost" type="chat" xmlns="jabber:client">'
                         "<body>still here</body></message>")
        await wait_for(lambda: got, "message after the bad frame")
        assert bob.state == ChatState.ONLINE
    finally:
        await alice.close()
        await bob.close()
