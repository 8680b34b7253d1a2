"""Tests for connectycube.rest against a real local aiohttp server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket

import pytest
from aiohttp import web

from connectycube.config import AppConfig
from connectycube.errors import (
    AuthError,
    ConnectyCubeTimeout,
    ConnectyCubeUnavailable,
    SessionExpired,
)
from connectycube.rest import RestClient, Session, session_body, sign, signature_string

MISSING = {"errors": {"base": ["Required session does not exist"]}}


class FakeApi:
    """A minimal ConnectyCube REST server that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, object]] = []
        self.tokens: dict[str, int] = {}
        self.users = {"alice": ("alicepass", 1001), "bob": ("bobpass", 1002)}
        self.counter = 0
        self.expire_next = 0  # how many authenticated requests to answer "session missing"
        self.slow = False
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        self.app = app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, dict(request.headers), body))
        if self.slow:
            await self.release.wait()
        path = request.path
        if path == "/session.json" and request.method == "POST":
            if body.get("auth_key") != "key":
                return web.json_response({"errors": ["Unauthorized"]}, status=401)
            uid = 0
            if "user" in body:
                entry = self.users.get(body["user"].get("login"))
                if entry is None or entry[0] != body["user"]["password"]:
                    return web.json_response({"errors": ["Unauthorized"]}, status=401)
                uid = entry[1]
            self.counter += 1
            token = f"tok{self.counter}"
            self.tokens[token] = uid
            return web.json_response(
                {"session": {"token": token, "user_id": uid, "application_id": body[
                    "application_id"], "user": {"id": uid}}},
                status=201,
            )
        token = request.headers.get("CB-Token")
        if token not in self.tokens:
            return web.json_response(MISSING, status=401)
        if self.expire_next:
            self.expire_next -= 1
            self.tokens.pop(token)
            return web.json_response(MISSING, status=401)
        if path == "/session.json" and request.method == "DELETE":
            self.tokens.pop(token)
            return web.Response(text="")
        if path.startswith("/users/v2"):
            ids = request.query.getall("id[in][]")
            return web.json_response(
                {"limit": 10, "skip": 0, "total_entries": len(ids),
                 "items": [{"id": int(i), "login": f"u{i}"} for i in ids]}
            )
        if path.startswith("/users/"):
            uid = int(path.split("/")[2].split(".")[0])
            return web.json_response({"user": {"id": uid, "login": f"u{uid}"}})
        if path == "/events.json":
            return web.json_response([{"event": {"id": 1, "event_type": "one_shot"}}])
        if path == "/calls/reject.json":
            return web.json_response({})
        return web.json_response({"errors": ["not found"]}, status=404)


@pytest.fixture
async def api():
    fake = FakeApi()
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    fake.release.set()
    await runner.cleanup()


def make_app(url: str, **kw) -> AppConfig:
    return AppConfig(app_id=123, auth_key=kw.pop("auth_key", "key"), api_url=url, **kw)


async def test_it_creates_a_user_session_with_sdk_headers(api):
    async with RestClient(make_app(api.url)) as client:
        session = await client.create_session(login="alice", password="alicepass")
        assert session.user_id == 1001
        assert session.application_id == 123
        method, path, headers, body = api.requests[0]
        assert (method, path) == ("POST", "/session.json")
        assert body == {"application_id": 123, "auth_key": "key",
                        "user": {"login": "alice", "password": "alicepass"}}
        assert headers["CB-SDK"].endswith("- Client")
        assert headers["Content-Type"].startswith("application/json")
        # It should send the token on later requests.
        user = await client.get_user(1002)
        assert user == {"id": 1002, "login": "u1002"}
        assert api.requests[-1][2]["CB-Token"] == session.token


async def test_it_keeps_secrets_out_of_reprs(api):
    app = make_app(api.url, auth_secret="s3cret")
    assert "key" not in repr(app).replace("auth_key", "")
    assert "s3cret" not in repr(app)
    async with RestClient(app) as client:
        session = await client.create_session(login="alice", password="alicepass")
        assert session.token not in repr(session)
        assert "alicepass" not in repr(client) and "alicepass" not in repr(client._credentials)


async def test_it_lists_users_with_array_query(api):
    async with RestClient(make_app(api.url)) as client:
        await client.create_session(login="alice", password="alicepass")
        users = await client.list_users([1002, 1003])
        assert [u["id"] for u in users] == [1002, 1003]
        assert api.requests[-1][1] == "/users/v2.json"


async def test_it_sends_events_and_call_rejects(api):
    async with RestClient(make_app(api.url)) as client:
        await client.create_session(login="alice", password="alicepass")
        events = await client.create_event([1002], {"message": "Incoming call", "ios_voip": 1})
        assert events[0]["event"]["event_type"] == "one_shot"
        body = api.requests[-1][3]["event"]
        assert body["user"] == {"ids": [1002]}
        assert body["notification_type"] == "push"
        assert json.loads(base64.b64decode(body["message"])) == {
            "message": "Incoming call", "ios_voip": 1}
        await client.call_reject("sess-1", 1002, {"busy": True})
        assert api.requests[-1][1:4:2] == ("/calls/reject.json", {
            "sessionID": "sess-1", "recipientId": 1002, "platform": "web",
            "userInfo": {"busy": True}})


async def test_it_refuses_bad_credentials_with_a_clear_error(api, caplog):
    caplog.set_level(logging.DEBUG)
    async with RestClient(make_app(api.url)) as client:
        with pytest.raises(AuthError) as info:
            await client.create_session(login="alice", password="wrong-password")
    assert str(info.value) == "ConnectyCube refused the login for app 123: Unauthorized"
    assert info.value.status == 401
    assert "wrong-password" not in caplog.text


async def test_it_refuses_a_bad_auth_key(api):
    async with RestClient(make_app(api.url, auth_key="nope")) as client:
        with pytest.raises(AuthError, match="app 123: Unauthorized") as info:
            await client.create_session()
        assert "nope" not in str(info.value)


async def test_it_logs_in_again_once_when_the_session_expired(api):
    async with RestClient(make_app(api.url)) as client:
        first = await client.create_session(login="alice", password="alicepass")
        api.expire_next = 1
        user = await client.get_user(1002)
        assert user["id"] == 1002
        assert client.token != first.token
        paths = [r[1] for r in api.requests]
        assert paths == ["/session.json", "/users/1002.json", "/session.json", "/users/1002.json"]


async def test_it_gives_up_after_one_retry(api):
    async with RestClient(make_app(api.url)) as client:
        await client.create_session(login="alice", password="alicepass")
        api.expire_next = 2
        with pytest.raises(SessionExpired, match="app 123"):
            await client.get_user(1002)
        assert [r[1] for r in api.requests].count("/users/1002.json") == 2


async def test_it_destroys_the_session(api):
    async with RestClient(make_app(api.url)) as client:
        session = await client.create_session(login="alice", password="alicepass")
        await client.destroy_session()
        assert session.token not in api.tokens
        assert client.session is None
        assert api.requests[-1][:2] == ("DELETE", "/session.json")


async def test_it_times_out(api):
    api.slow = True
    async with RestClient(make_app(api.url), timeout=0.2) as client:
        with pytest.raises(ConnectyCubeTimeout, match="timed out"):
            await client.create_session(login="alice", password="alicepass")


async def test_it_reports_a_refused_connection():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with RestClient(make_app(f"http://127.0.0.1:{port}")) as client:
        with pytest.raises(ConnectyCubeUnavailable, match="unreachable") as info:
            await client.create_session(login="alice", password="alicepass")
        assert "alicepass" not in str(info.value)


async def test_it_signs_legacy_sessions(api):
    app = make_app(api.url, auth_secret="secret")
    async with RestClient(app) as client:
        await client.create_session(login="alice", password="alicepass")
    body = api.requests[0][3]
    assert set(body) >= {"nonce", "timestamp", "signature"}
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    assert body["signature"] == sign(unsigned, "secret")


def test_it_builds_the_legacy_signature_string():
    params = {"application_id": 1, "auth_key": "AbC", "nonce": 1234, "timestamp": 1544010993,
              "user": {"password": "secret", "login": "john"}}
    assert signature_string(params) == (
        "application_id=1&auth_key=AbC&nonce=1234&timestamp=1544010993"
        "&user[login]=john&user[password]=secret"
    )
    # HMAC-SHA1 of that string keyed by "authsecret", computed independently with openssl.
    assert sign(params, "authsecret") == SIGNATURE


def test_it_signs_the_body_it_sends():
    app = AppConfig(app_id=1, auth_key="AbC", auth_secret="authsecret")
    from connectycube.rest import _Credentials

    body = session_body(app, _Credentials("john", None, "secret"), nonce=1234,
                        timestamp=1544010993)
    assert body["signature"] == SIGNATURE


def test_it_hides_the_token_in_session_repr():
    assert "abc" not in repr(Session(token="abc", user_id=1, application_id=2))


SIGNATURE = "6be10704fd7a6183607ba19a6964dfaede868da2"
