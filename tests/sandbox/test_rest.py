"""The sandbox REST API over real HTTP (daphne), raw and through the Python client."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from connectycube.config import AppConfig
from connectycube.errors import AuthError, SessionExpired
from connectycube.rest import RestClient
from connectycube.signalling import decode_message
from connectycube.xmpp import XmppClient
from tests.sandbox.conftest import APP_ID, AUTH_KEY, DOMAIN

MISSING = {"errors": {"base": ["Required session does not exist"]}}


def login_body(login="alice", password="alicepass", **extra):
    return {"application_id": APP_ID, "auth_key": AUTH_KEY,
            "user": {"login": login, "password": password}, **extra}


async def request(method, url, *, json=None, token=None, headers=None):
    hdrs = {"CB-SDK": "JS 6.1.2 - Client", **(headers or {})}
    if token:
        hdrs["CB-Token"] = token
    async with aiohttp.ClientSession() as http, http.request(method, url, json=json,
                                                             headers=hdrs) as resp:
        text = await resp.text()
        data = None
        if resp.content_type == "application/json":
            data = await resp.json()
        return resp.status, data, text, resp.headers


async def token_for(sandbox, login="alice", password="alicepass") -> str:
    status, data, _, _ = await request("POST", sandbox.api() + "/session.json",
                                       json=login_body(login, password))
    assert status == 201
    return data["session"]["token"]


async def test_it_creates_user_and_app_sessions(sandbox):
    status, data, _, _ = await request("POST", sandbox.api() + "/session.json",
                                       json=login_body(nonce=1, timestamp=2, signature="x"))
    assert status == 201
    session = data["session"]
    assert session["user_id"] == 1001 and session["application_id"] == APP_ID
    assert len(session["token"]) == 40 and session["user"]["login"] == "alice"
    # Without .json too, and an application-only session has user_id 0.
    status, data, _, _ = await request("POST", sandbox.api() + "/session",
                                       json={"application_id": APP_ID, "auth_key": AUTH_KEY})
    assert status == 201 and data["session"]["user_id"] == 0


@pytest.mark.parametrize(
    "body",
    [login_body(password="wrong"), login_body(login="nobody"),
     {**login_body(), "auth_key": "wrong"}, {**login_body(), "application_id": 999}],
)
async def test_it_refuses_bad_credentials(sandbox, body):
    status, data, _, _ = await request("POST", sandbox.api() + "/session.json", json=body)
    assert (status, data) == (401, {"errors": ["Unauthorized"]})


async def test_it_answers_cors_preflight(sandbox):
    status, _, _, headers = await request(
        "OPTIONS", sandbox.api() + "/users/v2.json",
        headers={"Origin": "http://127.0.0.1:9999", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "cb-token,cb-sdk,content-type"})
    assert status == 204
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"cb-token", "cb-sdk", "cb-authkey", "content-type"} <= allowed
    assert headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:9999"
    assert "DELETE" in headers["Access-Control-Allow-Methods"]


async def test_it_requires_a_valid_token(sandbox):
    for token in (None, "0" * 40):
        status, data, _, headers = await request("GET", sandbox.api() + "/users/1002.json",
                                                 token=token)
        assert (status, data) == (401, MISSING)
        assert "Access-Control-Allow-Origin" in headers


async def test_it_shows_and_destroys_sessions(sandbox):
    token = await token_for(sandbox)
    status, data, _, _ = await request("GET", sandbox.api() + "/session.json", token=token)
    assert status == 200 and data["session"]["token"] == token
    status, _, _, _ = await request("DELETE", sandbox.api() + "/session.json", token=token)
    assert status == 200
    status, data, _, _ = await request("GET", sandbox.api() + "/session.json", token=token)
    assert (status, data) == (401, MISSING)


async def test_it_logs_in_and_out_on_an_app_session(sandbox):
    status, data, _, _ = await request("POST", sandbox.api() + "/session.json",
                                       json={"application_id": APP_ID, "auth_key": AUTH_KEY})
    token = data["session"]["token"]
    status, data, _, _ = await request("POST", sandbox.api() + "/login.json", token=token,
                                       json={"login": "bob", "password": "bobpass"})
    assert status in (200, 202) and data["user"]["id"] == 1002
    status, data, _, _ = await request("GET", sandbox.api() + "/session.json", token=token)
    assert data["session"]["user_id"] == 1002
    status, _, _, _ = await request("DELETE", sandbox.api() + "/login.json", token=token)
    assert status == 200


async def test_it_lists_and_shows_users(sandbox):
    token = await token_for(sandbox)
    status, data, _, _ = await request(
        "GET", sandbox.api() + "/users/v2.json?id[in][]=1002&id[in][]=1003", token=token)
    assert status == 200
    assert [u["id"] for u in data["items"]] == [1002, 1003]
    assert data["total_entries"] == 2 and "limit" in data and "skip" in data
    status, data, _, _ = await request("GET", sandbox.api() + "/users/1003", token=token)
    assert data["user"]["login"] == "carol"
    assert "password" not in data["user"]
    status, data, _, _ = await request("GET", sandbox.api() + "/users/4242.json", token=token)
    assert status == 404 and "errors" in data


async def test_it_accepts_events_and_subscriptions(sandbox):
    token = await token_for(sandbox)
    status, data, _, _ = await request(
        "POST", sandbox.api() + "/events.json", token=token,
        json={"event": {"notification_type": "push", "user": {"ids": [1002]},
                        "environment": "development", "message": "e30="}})
    assert status in (200, 201) and data[0]["event"]["event_type"] == "one_shot"
    status, data, _, _ = await request(
        "POST", sandbox.api() + "/subscriptions.json", token=token,
        json={"notification_channel": "web", "device": {"platform": "web", "udid": "u1"}})
    assert status in (200, 201) and data[0]["subscription"]["notification_channel"] == {
        "name": "web"}


async def test_it_rejects_bad_json_cleanly(sandbox):
    async with aiohttp.ClientSession() as http, http.post(
        sandbox.api() + "/session.json", data=b"{not json",
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
        assert "errors" in await resp.json()


async def test_it_turns_an_http_reject_into_a_reject_signal(sandbox):
    alice = XmppClient(sandbox.chat(1), DOMAIN, 1001, APP_ID, "alicepass")
    await alice.connect()
    got: asyncio.Queue = asyncio.Queue()
    alice.add_message_handler(lambda el, raw: got.put_nowait(raw))
    try:
        token = await token_for(sandbox, "bob", "bobpass")
        status, data, _, _ = await request(
            "POST", sandbox.api() + "/calls/reject.json", token=token,
            json={"sessionID": "s-1", "recipientId": 1001, "platform": "web",
                  "userInfo": {"busy": True}})
        assert (status, data) == (200, {})
        msg = decode_message(await asyncio.wait_for(got.get(), 10))
        assert msg.sender.startswith("1002-1@localhost")
        assert msg.signal.signal_type == "reject" and msg.signal.session_id == "s-1"
        assert msg.signal.user_info == {"busy": "true"}
    finally:
        await alice.close()


def app_config(sandbox, auth_key=AUTH_KEY) -> AppConfig:
    return AppConfig(app_id=APP_ID, auth_key=auth_key, api_url=sandbox.api(),
                     chat_url=sandbox.chat(), chat_domain=DOMAIN)


async def test_the_python_client_works_against_it(sandbox):
    async with RestClient(app_config(sandbox)) as client:
        session = await client.create_session(login="alice", password="alicepass")
        assert session.user_id == 1001
        assert (await client.get_user(1002))["login"] == "bob"
        assert [u["id"] for u in await client.list_users([1002, 1003])] == [1002, 1003]
        assert (await client.create_event([1002], {"message": "hi"}))[0]["event"]
        await client.call_reject("s-2", 1002, {"busy": True})
        # A destroyed session is re-created once, transparently.
        async with aiohttp.ClientSession() as http:
            await http.delete(sandbox.api() + "/session.json",
                              headers={"CB-Token": session.token})
        assert (await client.get_user(1003))["login"] == "carol"
        assert client.token != session.token
        await client.destroy_session()
        with pytest.raises(SessionExpired):
            await client.get_user(1003)


async def test_the_python_client_explains_bad_credentials(sandbox):
    async with RestClient(app_config(sandbox)) as client:
        with pytest.raises(AuthError) as info:
            await client.create_session(login="alice", password="nope")
    assert str(info.value) == "ConnectyCube refused the login for app 1: Unauthorized"
    async with RestClient(app_config(sandbox, auth_key="bad")) as client:
        with pytest.raises(AuthError, match="refused the login for app 1"):
            await client.create_session(login="alice", password="alicepass")
