"""PbxListener against a small AMI server of the test's own: bad input off the wire.

The real Asterisk runs in tests/integration/test_listener.py; here the server sends what
Asterisk never would (malformed and unknown events) between the events of a good call.
"""

import asyncio
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connections

from calls.listener import PbxListener
from calls.models import Call, CallState, Disposition, Pbx

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

EOM = b"\r\n\r\n"


def msg(**headers: str) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n"


def chan(uid: str, channel: str, **extra: str) -> dict[str, str]:
    return {"Uniqueid": uid, "Linkedid": "7.0", "Channel": channel, "Timestamp": f"{time.time():.6f}", **extra}


GOOD_CALL = [
    msg(Event="Newchannel", **chan("7.0", "PJSIP/1001-00000001", CallerIDNum="1001", Exten="1002")),
    msg(Event="Newchannel", **chan("7.1", "PJSIP/1002-00000002")),
    msg(Event="DialBegin", **chan("7.0", "PJSIP/1001-00000001"), DestChannel="PJSIP/1002-00000002"),
    msg(Event="Newstate", **chan("7.1", "PJSIP/1002-00000002"), ChannelStateDesc="Up"),
    msg(Event="DialEnd", **chan("7.0", "PJSIP/1001-00000001"), DialStatus="ANSWER"),
    msg(Event="Hangup", **chan("7.0", "PJSIP/1001-00000001"), Cause="16"),
    msg(Event="Hangup", **chan("7.1", "PJSIP/1002-00000002"), Cause="16"),
]
BAD = [
    msg(Event="Newchannel", Channel="PJSIP/1001-0000dead"),  # no Uniqueid: the tracker skips it
    msg(Event="Not An Event!", Uniqueid="7.0"),  # a name no event has: the client drops it
    b"Event: Newchannel\r\nEvent: Hangup\r\nUniqueid: 7.0\r\n\r\n",  # two names
    b"a line with no colon\r\n\r\n",
    msg(Event="SomethingAsteriskAddsLater", Uniqueid="7.0"),  # unknown: ignored
    msg(Event="Hangup", Uniqueid="never-seen", Cause="not a number"),
    "Event: Newstate\r\nUniqueid: 7.1\r\nChannelStateDesc: \u00ff\u00fe bytes\r\n\r\n".encode("latin-1"),
]


async def serve(payload: bytes) -> tuple[asyncio.base_events.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        sent = False
        try:
            while raw := await reader.readuntil(EOM):
                headers = dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line)
                action, action_id = headers.get("Action", "").lower(), headers.get("ActionID", "")
                if action == "coreshowchannels":
                    writer.write(msg(Response="Success", ActionID=action_id, EventList="start", Message="follow"))
                    writer.write(msg(Event="CoreShowChannelsComplete", ActionID=action_id, EventList="Complete"))
                    if not sent:
                        writer.write(payload)
                        sent = True
                else:  # Login, Ping
                    writer.write(msg(Response="Success", ActionID=action_id, Message="Authentication accepted"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_it_skips_bad_events_off_the_wire_and_records_the_good_call(transactional_db: None) -> None:
    payload = b"".join([*BAD[:4], GOOD_CALL[0], *BAD[4:], *GOOD_CALL[1:]])
    server, port = await serve(payload)
    pbx = await sync_to_async(Pbx.objects.create)(
        name=f"unit-{uuid.uuid4().hex[:8]}", port=port, username="unit", secret="unit-secret-123"
    )
    listener = PbxListener(pbx, ping_interval=60)
    stop = asyncio.Event()
    run = asyncio.create_task(listener.run(stop))

    def ended() -> bool:
        # The test database is a shared-cache in-memory SQLite: a read while the listener's
        # thread writes fails at once ("table is locked") instead of waiting; just poll again.
        try:
            return Call.objects.filter(pbx=pbx, state=CallState.ENDED).exists()
        except OperationalError:
            return False

    try:
        async with asyncio.timeout(15):
            while not await sync_to_async(ended)():
                assert not run.done(), "the listener stopped"
                await asyncio.sleep(0.05)
        assert not run.done()
    finally:
        stop.set()
        await run
        server.close()
    call = await sync_to_async(Call.objects.get)(pbx=pbx)
    assert call.disposition == Disposition.ANSWERED and call.hangup_cause == 16
    assert listener.tracker.events_skipped == 1  # the Newchannel without a Uniqueid
    assert await sync_to_async(call.legs.count)() == 2
    kinds = await sync_to_async(list)(call.events.values_list("kind", flat=True))
    assert kinds.count("call.end") == 1 and kinds.count("channel.new") == 2
    await sync_to_async(connections.close_all)()  # sync_to_async's thread keeps its own connection
