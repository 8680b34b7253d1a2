"""AmiClient against a tiny AMI server on a real loopback socket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from calls.ami import (
    AmiClient,
    AmiError,
    AmiEvent,
    AmiNotConnected,
    AmiTimeout,
    ChannelGone,
    State,
)
from tests.calls.ami.ami_server import FakeAmi

SECRET = "s3cret-value"


@pytest.fixture
async def server() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(SECRET) as srv:
        yield srv


def make_client(server: FakeAmi, **kwargs: object) -> AmiClient:
    options: dict[str, object] = {
        "ping_interval": 0.1, "ping_timeout": 0.2, "reconnect_min": 0.05,
        "reconnect_max": 0.2, "action_timeout": 1.0,
    }
    options.update(kwargs)
    return AmiClient("127.0.0.1", server.port, "ccbridge", SECRET, **options)  # type: ignore[arg-type]


async def wait_until(predicate, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - polling test state is fine here
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), within)


async def test_it_connects_and_emits_events(server: FakeAmi) -> None:
    events: list[AmiEvent] = []
    client = make_client(server, on_event=events.append)
    await client.start()
    try:
        await client.wait_connected(5)
        assert client.connected and client.state is State.CONNECTED
        await wait_until(lambda: any(e.name == "FullyBooted" for e in events))
        assert client.last_event_at is not None
    finally:
        await client.stop()
    assert client.state is State.CLOSED


async def test_it_sends_async_on_every_action(server: FakeAmi) -> None:
    client = make_client(server)
    await client.start()
    try:
        await client.wait_connected(5)
        result = await client.originate("Local/1@x", "1", "x", timeout=1)
        assert result.success and result.channel == "Local/1@x-1;1"
        await client.action({"Action": "CoreStatus"})
    finally:
        await client.stop()
    sent = {a["Action"]: a for a in server.actions}
    assert sent["Originate"]["Async"] == "true"
    assert sent["CoreStatus"]["Async"] == "false"
    assert client.connect_count == 1


async def test_it_maps_no_such_channel(server: FakeAmi) -> None:
    client = make_client(server)
    await client.start()
    try:
        await client.wait_connected(5)
        with pytest.raises(ChannelGone, match="PJSIP/gone-1"):
            await client.hangup("PJSIP/gone-1")
        assert client.connected
    finally:
        await client.stop()


async def test_it_skips_malformed_events_and_keeps_the_link(
    server: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[AmiEvent] = []
    client = make_client(server, on_event=events.append, ping_interval=5)
    await client.start()
    try:
        await client.wait_connected(5)
        server.push(
            "Event: A\r\nEvent: B\r\n\r\n"          # two names: panoramisk chokes on it
            "garbage without colon\r\n\r\n"          # no headers at all
            "Event: bad name!\r\n\r\n"               # invalid name
            "\xff\xfe: \x00\r\n\r\n"                 # binary junk
            "Event: Good\r\nChannel: PJSIP/1-1\r\n\r\n"
        )
        await wait_until(lambda: any(e.name == "Good" for e in events))
        await client.ping()  # raises AmiTimeout unless the link still answers actions
        # The same link: the junk neither dropped it nor forced a reconnect and a second login.
        assert client.connected and client.connect_count == 1 and server.logins == 1
    finally:
        await client.stop()
    assert [e.name for e in events if e.name != "FullyBooted"] == ["Good"]
    assert "malformed" in caplog.text or "could not handle" in caplog.text


async def test_it_survives_a_failing_event_handler(server: FakeAmi) -> None:
    seen: list[str] = []

    def handler(event: AmiEvent) -> None:
        seen.append(event.name)
        raise RuntimeError("handler bug")

    client = make_client(server, on_event=handler, ping_interval=5)
    await client.start()
    try:
        await client.wait_connected(5)
        server.push("Event: One\r\n\r\nEvent: Two\r\n\r\n")
        await wait_until(lambda: "Two" in seen)
        assert client.connected
    finally:
        await client.stop()


async def test_it_reconnects_when_pings_go_unanswered(server: FakeAmi) -> None:
    reasons: list[str] = []
    client = make_client(server, on_disconnect=reasons.append)
    await client.start()
    try:
        await client.wait_connected(5)
        server.answer_pings = False
        await wait_until(lambda: reasons)
        assert "Ping" in reasons[0]
        server.answer_pings = True
        await wait_until(lambda: client.connected and client.connect_count >= 2)
        assert server.logins >= 2
    finally:
        await client.stop()


async def test_it_fails_pending_actions_when_the_link_drops(server: FakeAmi) -> None:
    client = make_client(server, ping_interval=5)
    await client.start()
    try:
        await client.wait_connected(5)
        pending = asyncio.create_task(client.action({"Action": "Silent"}, timeout=5))
        await wait_until(lambda: any(a.get("Action") == "Silent" for a in server.actions))
        server.drop()
        with pytest.raises(AmiNotConnected):
            await pending
        # The action is not re-sent on the next connection.
        await wait_until(lambda: client.connect_count >= 2)
        assert [a["Action"] for a in server.actions].count("Silent") == 1
    finally:
        await client.stop()


async def test_it_times_out_an_unanswered_action(server: FakeAmi) -> None:
    client = make_client(server, ping_interval=5)
    await client.start()
    try:
        await client.wait_connected(5)
        with pytest.raises(AmiTimeout, match="Silent"):
            await client.action({"Action": "Silent"}, timeout=0.2)
    finally:
        await client.stop()


async def test_it_refuses_actions_when_not_connected(server: FakeAmi) -> None:
    client = make_client(server)
    with pytest.raises(AmiNotConnected):
        await client.ping()


async def test_it_retries_a_refused_login_without_logging_the_secret(
    server: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = AmiClient("127.0.0.1", server.port, "ccbridge", "wrong-secret-xyz",
                       reconnect_min=0.05, reconnect_max=0.1)
    await client.start()
    try:
        with pytest.raises(AmiTimeout, match="refused"):
            await client.wait_connected(0.5)
        logins = [a for a in server.actions if a.get("Action") == "Login"]
        assert len(logins) >= 2  # it retries with backoff
    finally:
        await client.stop()
    assert f"127.0.0.1:{server.port}" in (client.last_error or "")
    assert "ccbridge" in (client.last_error or "")
    assert "wrong-secret-xyz" not in caplog.text
    assert "wrong-secret-xyz" not in repr(client)


async def test_it_redacts_the_secret_from_panoramisk_logs(
    server: FakeAmi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(server, ping_interval=5)
    await client.start()
    try:
        await client.wait_connected(5)
        # panoramisk logs whole actions in places; the adapter's log filter blanks the secret.
        client._plog.info("Fail to send %r", {"Action": "Login", "Secret": SECRET})
    finally:
        await client.stop()
    assert SECRET not in caplog.text
    assert "********" in caplog.text


async def test_it_stops_idempotently_and_refuses_restart(server: FakeAmi) -> None:
    client = make_client(server)
    await client.start()
    await client.wait_connected(5)
    await client.stop()
    await client.stop()
    assert not client.connected
    with pytest.raises(AmiError):
        await client.start()
