"""The AMI listener (`manage.py runami`) against the real Asterisk 22 lab, with SIPp phones.

runami runs as a separate process, as in production, on the same database as the test: the
test database pytest-django made on PostgreSQL, or a temporary SQLite file (see
`shared_database`). The test places calls with SIPp and reads the CDRs the listener wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import connections

from calls.ami_service import (
    AmiActionError,
    AmiService,
    ListenerUnavailable,
    attended_transfer,
    bridge_channels,
    get_channels,
    hangup_channel,
    is_connected,
    originate_call,
    transfer_call,
)
from calls.models import Call, CallEvent, CallLeg, CallState, Disposition, Pbx
from calls.tracker import DISCONNECTED_REASON
from tests.conftest import make_mapping
from tests.lab.asterisk import AsteriskLab
from tests.lab.sipp import Sipp, SippProcess, free_tcp_port
from tests.lab.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.asterisk, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


# --- a database both processes see ---------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_database(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """Return a DATABASE_URL for runami that opens the database this test process uses.

    PostgreSQL (and a file SQLite) are shared as they are. pytest-django's default SQLite
    test database lives in this process's memory, so for this module the default
    connection is pointed at a migrated temporary file instead, and put back after.
    """
    with django_db_blocker.unblock():
        conn = connections["default"]
        sd = conn.settings_dict
        if conn.vendor == "postgresql":
            auth = quote(sd["USER"] or "", safe="")
            if sd.get("PASSWORD"):
                auth += ":" + quote(sd["PASSWORD"], safe="")
            host = f"{sd.get('HOST') or '127.0.0.1'}:{sd.get('PORT') or 5432}"
            yield f"postgres://{auth}@{host}/{quote(sd['NAME'], safe='')}"
            return
        if not conn.is_in_memory_db():
            yield f"sqlite:///{sd['NAME']}"
            return
        # Django never closes an in-memory connection (it would drop the database): set it aside.
        saved, conn.connection = conn.connection, None
        old_name = sd["NAME"]
        tmp = tempfile.mkdtemp(prefix="ccbridge-listener-db-")
        sd["NAME"] = f"{tmp}/db.sqlite3"
        try:
            call_command("migrate", verbosity=0)
            yield f"sqlite:///{sd['NAME']}"
        finally:
            conn.close()
            sd["NAME"] = old_name
            conn.connection = saved


# --- runami as a subprocess ------------------------------------------------------------------------


class Runami:
    """`manage.py runami --pbx NAME` in the background, its output in a log file."""

    def __init__(self, pbx: str, env: dict[str, str], log: Path, extra: list[str]) -> None:
        self.pbx = pbx
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runami", "--pbx", pbx, *extra],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def lab_pbx(transactional_db: None, asterisk_lab: AsteriskLab) -> Pbx:
    """A Pbx row for the lab's AMI, with a fresh name so no Redis lock or status is shared."""
    return Pbx.objects.create(
        name=f"lab-{uuid.uuid4().hex[:8]}",
        host=asterisk_lab.host,
        port=asterisk_lab.ports.ami,
        username=asterisk_lab.ami_username,
        secret=asterisk_lab.ami_secret,
        context="from-phones",
    )


@pytest.fixture
def start_runami(
    shared_database: str, lab_pbx: Pbx, tmp_path: Path, settings: Any
) -> Iterator[Callable[..., Runami]]:
    """Start runami for `lab_pbx` (or another Pbx); stop every one started at the end."""
    env = {
        **os.environ,
        "DATABASE_URL": shared_database,
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    started: list[Runami] = []

    def start(*extra: str, pbx: Pbx | None = None, wait: bool = True) -> Runami:
        name = (pbx or lab_pbx).name
        runami = Runami(name, env, tmp_path / f"runami-{len(started)}.log", list(extra))
        started.append(runami)
        if wait:
            wait_for(lambda: is_connected(AmiService(name)), 30, "runami connected", runami)
        return runami

    yield start
    for runami in started:
        runami.stop()
        if os.environ.get("CCBRIDGE_SHOW_RUNAMI"):
            print(runami.output())
    # No call may stay open once the lab is quiet (every test ends its calls).
    if lab_pbx.pk:
        open_calls = list(Call.objects.filter(pbx=lab_pbx).live().values_list("linkedid", "state"))
        hangup_all_lab_channels()
        assert not open_calls, f"calls left open: {open_calls}"


_LAB: list[AsteriskLab] = []


@pytest.fixture(autouse=True)
def _remember_lab(asterisk_lab: AsteriskLab) -> Iterator[None]:
    _LAB[:] = [asterisk_lab]
    yield
    hangup_all_lab_channels()


def hangup_all_lab_channels() -> None:
    if _LAB and _LAB[0].running:
        with contextlib.suppress(Exception):
            _LAB[0].rx("channel request hangup all")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, runami: Runami | None = None) -> Any:
    """Poll until `predicate()` is truthy; fail with `what` (and runami's log) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            log = f"\n--- runami ---\n{runami.output()[-4000:]}" if runami else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{log}")
        time.sleep(0.1)


def finish(proc: SippProcess, within: float = 30.0) -> None:
    result = proc.wait(within)
    assert result.ok, result.describe()


def calls_of(pbx: Pbx) -> list[Call]:
    return list(Call.objects.filter(pbx=pbx).order_by("started_at", "pk"))


def ended_calls(pbx: Pbx, n: int, runami: Runami, timeout: float = 20.0) -> list[Call]:
    """Wait until `n` calls of `pbx` have ended; return every call of the PBX."""
    wait_for(
        lambda: Call.objects.filter(pbx=pbx, state=CallState.ENDED).count() >= n,
        timeout,
        f"{n} ended calls",
        runami,
    )
    return calls_of(pbx)


def live_channel(pbx: Pbx, prefix: str, runami: Runami, up: bool = True) -> CallLeg:
    """Wait for the open leg whose channel starts with `prefix` (and is Up) in the database."""

    def find() -> CallLeg | None:
        legs = CallLeg.objects.filter(call__pbx=pbx, ended_at__isnull=True, channel__startswith=prefix)
        if up:
            legs = legs.filter(state="Up")
        return legs.select_related("call").first()

    return wait_for(find, 20, f"a live {prefix} leg", runami)


def kinds(call: Call) -> list[str]:
    return list(call.events.order_by("at", "pk").values_list("kind", flat=True))


# --- 1. one answered call ---------------------------------------------------------------------------


class Board:
    """A superuser's live board: a channel in the calls.all group, read after the fact."""

    def __init__(self) -> None:
        from channels.layers import get_channel_layer

        from calls.board import ALL_GROUP

        self.layer = get_channel_layer()
        self.group = ALL_GROUP
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(self.group, self.channel)

    def messages(self, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 10) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while not until(got):
                        got.append(await self.layer.receive(self.channel))
            return got

        got = async_to_sync(read)()
        async_to_sync(self.layer.group_discard)(self.group, self.channel)
        return got


def test_it_records_an_answered_call(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp, asterisk_lab: AsteriskLab
) -> None:
    runami = start_runami()
    board = Board()
    ring_ms, hold_ms = 2000, 3000
    callee = sipp.answer_as("1002", ring_ms=ring_ms)
    caller = sipp.call("1001", "1002", hold_ms=hold_ms)
    finish(caller)
    finish(callee)
    [call] = ended_calls(lab_pbx, 1, runami)

    assert call.disposition == Disposition.ANSWERED
    assert call.hangup_cause == 16
    assert call.caller_number == "1001"
    assert call.dialed == "1002"
    # SIPp rang for ring_ms and talked for hold_ms; the CDR keeps whole seconds.
    assert abs(call.ring_seconds - ring_ms / 1000) <= 1, call.ring_seconds
    assert abs(call.talk_seconds - hold_ms / 1000) <= 1, call.talk_seconds
    assert call.duration_seconds >= call.ring_seconds + call.talk_seconds - 1
    assert call.started_at <= call.ringing_at <= call.answered_at <= call.ended_at

    legs = list(call.legs.order_by("created_at", "pk"))
    assert [leg.channel.split("-")[0] for leg in legs] == ["PJSIP/1001", "PJSIP/1002"]
    assert call.linkedid == call.uniqueid == legs[0].uniqueid
    assert legs[1].uniqueid and legs[1].uniqueid != legs[0].uniqueid
    assert call.sip_channel == legs[0].channel
    assert all(leg.ended_at and leg.hangup_cause == 16 for leg in legs)
    assert legs[1].answered_at is not None

    events = kinds(call)
    assert events[:2] == ["channel.new", "channel.new"] or events[0] == "channel.new"
    order = [events.index(k) for k in ("channel.new", "dial.begin", "dial.end", "bridge.enter", "call.end")]
    assert order == sorted(order), events
    assert events[-1] == "call.end"
    assert events.count("call.end") == 1
    assert events.count("channel.hangup") == 2
    end = call.events.get(kind="call.end")
    assert end.payload["disposition"] == "answered"
    assert call.events.get(kind="dial.end").payload["status"] == "ANSWER"

    # The live board heard about the call as it went, and last that it ended.
    def ended(got: list[dict[str, Any]]) -> bool:
        return any(m.get("kind") == "end" and m["call"]["id"] == call.pk for m in got)

    updates = [m for m in board.messages(ended) if m["type"] == "call.update" and m["call"]["id"] == call.pk]
    assert updates and updates[-1]["kind"] == "end"
    assert updates[-1]["call"]["disposition"] == "answered"
    assert {"ringing", "up"} & {m["call"]["state"] for m in updates[:-1]}
    assert asterisk_lab.ami_secret not in runami.output()


# --- 2. busy, no answer, caller cancel, and a mapped call ---------------------------------------------


def test_it_gives_busy_no_answer_and_cancel_their_dispositions(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp
) -> None:
    runami = start_runami()
    # Three phones, three outcomes, at the same time.
    busy = sipp.answer_as("1002", scenario="uas_busy")
    ringing = sipp.answer_as("1003", scenario="uas_noanswer")
    caller_busy = sipp.call("1001", "1002", hold_ms=1000)
    caller_gives_up = sipp.call("1001", "1003", hold_ms=2000, scenario="uac_cancel")
    finish(caller_gives_up)
    finish(ringing)
    caller_busy.wait(30)  # the uac scenario wants a 200; a 486 ends it with an error
    busy.kill()
    calls = {c.dialed: c for c in ended_calls(lab_pbx, 2, runami)}
    assert set(calls) == {"1002", "1003"}

    assert calls["1002"].disposition == Disposition.BUSY
    assert calls["1002"].hangup_cause == 17, calls["1002"].hangup_cause_text
    assert calls["1002"].talk_seconds == 0 and calls["1002"].answered_at is None
    assert calls["1002"].events.get(kind="dial.end").payload["status"] == "BUSY"

    no_answer = calls["1003"]
    assert no_answer.disposition == Disposition.NO_ANSWER
    assert no_answer.answered_at is None and no_answer.talk_seconds == 0
    assert abs(no_answer.ring_seconds - 2) <= 1, no_answer.ring_seconds  # the caller gave up after 2 s
    assert no_answer.events.get(kind="dial.end").payload["status"] == "CANCEL"
    for call in calls.values():
        assert kinds(call)[-1] == "call.end"
        assert call.legs.count() == 2 and not call.legs.filter(ended_at__isnull=True).exists()


def test_it_gives_a_call_cancelled_before_the_answer_no_answer(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp
) -> None:
    runami = start_runami()
    slow = sipp.answer_as("1002", ring_ms=20000)  # would answer after 20 s
    finish(sipp.call("1001", "1002", hold_ms=500, scenario="uac_cancel"))
    slow.kill()  # it got a CANCEL its scenario doesn't expect
    [call] = ended_calls(lab_pbx, 1, runami)
    assert call.disposition == Disposition.NO_ANSWER
    assert call.answered_at is None and call.talk_seconds == 0
    assert call.events.get(kind="dial.end").payload["status"] == "CANCEL"


def test_it_maps_a_call_to_vendas_through_the_bridge_call_user_event(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp, departments: Any, cc_app: Any
) -> None:
    vendas, _ = departments
    mapping = make_mapping(vendas, cc_app, "sip:vendas@empresa.com")
    runami = start_runami()
    desk = sipp.answer_as("vendas", ring_ms=300)
    finish(sipp.call("1001", "vendas", hold_ms=1000))
    finish(desk)
    [call] = ended_calls(lab_pbx, 1, runami)
    assert call.mapping == mapping
    assert call.department == vendas
    assert call.dialed == "sip:vendas@empresa.com"
    assert call.disposition == Disposition.ANSWERED
    bridgecall = call.events.get(kind="bridgecall")
    assert bridgecall.payload == {"sip_uri": "sip:vendas@empresa.com", "mapping": mapping.pk}
    # The department is on every event, so its operators see the whole trail.
    assert set(call.events.values_list("department_id", flat=True)) == {vendas.pk}
    # The desk phone rang (the bridge trunk too while its qualify hadn't failed yet: no bridge here).
    legs = [leg.channel.split("-")[0] for leg in call.legs.all()]
    assert legs[0] == "PJSIP/1001" and "PJSIP/vendas" in legs


# --- 3. actions on live calls, audited ------------------------------------------------------------------


@pytest.fixture
def operator(transactional_db: None) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("op-ami", password="pw-op-ami", is_staff=True)


def answered_call(sipp: Sipp, pbx: Pbx, runami: Runami, callee: str = "1002") -> tuple[SippProcess, SippProcess, Call]:
    """Start 1001 -> callee, answered; return both SIPps and the live Call once both legs are Up."""
    uas = sipp.answer_as(callee, ring_ms=100)
    uac = sipp.call("1001", callee, hold_ms=25000)
    leg = live_channel(pbx, f"PJSIP/{callee}-", runami)
    live_channel(pbx, "PJSIP/1001-", runami)
    return uac, uas, leg.call


def legs_of(call: Call) -> list[str]:
    return list(call.legs.order_by("created_at", "pk").values_list("channel", flat=True))


def audit(kind: str) -> CallEvent:
    return CallEvent.objects.filter(kind=f"action.{kind}").latest("pk")


def test_actions_hang_up_and_fail_clearly_on_a_gone_channel(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp, operator: Any
) -> None:
    runami = start_runami()
    service = AmiService(lab_pbx.name)
    uac, uas, call = answered_call(sipp, lab_pbx, runami)
    live = get_channels(service)
    assert sorted(c["Channel"] for c in live) == sorted(legs_of(call))

    caller = legs_of(call)[0]
    assert hangup_channel(service, caller, actor=operator, call=call) == {"channel": caller}
    finish(uac)
    finish(uas)
    [ended] = ended_calls(lab_pbx, 1, runami)
    assert ended.disposition == Disposition.ANSWERED and ended.hangup_cause == 16
    event = audit("hangup")
    assert (event.actor, event.call) == (operator, call)
    assert event.payload["ok"] is True and event.payload["args"] == [caller]

    with pytest.raises(AmiActionError, match="channel gone"):
        hangup_channel(service, caller, actor=operator, call=call)
    event = audit("hangup")
    assert event.payload["ok"] is False and "channel gone" in event.payload["error"]
    assert event.actor == operator


def test_actions_fail_fast_when_no_listener_runs(lab_pbx: Pbx, operator: Any) -> None:
    with pytest.raises(ListenerUnavailable, match="is runami running"):
        hangup_channel(AmiService(lab_pbx.name, timeout=2), "PJSIP/1001-00000001", actor=operator)
    event = audit("hangup")
    assert event.actor == operator and event.payload["ok"] is False


def test_actions_blind_transfer_a_live_call(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp, operator: Any
) -> None:
    runami = start_runami()
    service = AmiService(lab_pbx.name)
    uac, uas, call = answered_call(sipp, lab_pbx, runami)
    caller, callee = legs_of(call)
    # The callee's channel transfers its peer (the caller) to the "wait" extension.
    result = transfer_call(service, callee, "wait", actor=operator, call=call)
    assert result == {"via": "BlindTransfer"}
    finish(uas)  # the callee is hung up once its peer left
    wait_for(lambda: call.events.filter(kind="transfer.blind").exists(), 10, "transfer.blind", runami)
    assert Call.objects.get(pk=call.pk).state == CallState.UP
    hangup_channel(service, caller, actor=operator, call=call)
    finish(uac)
    [ended] = ended_calls(lab_pbx, 1, runami)
    assert [(s["type"], s["to"], s["by"]) for s in ended.transfer_chain] == [("blind", "wait", callee)]
    assert ended.disposition == Disposition.ANSWERED
    event = audit("blind_transfer")
    assert (event.actor, event.call, event.payload["ok"]) == (operator, call, True)
    assert event.payload["result"] == {"via": "BlindTransfer"}


def test_actions_attended_transfer_a_live_call(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp, operator: Any
) -> None:
    runami = start_runami()
    service = AmiService(lab_pbx.name)
    target = sipp.answer_as("1003", ring_ms=100)
    uac, uas, call = answered_call(sipp, lab_pbx, runami)
    caller, callee = legs_of(call)
    assert attended_transfer(service, callee, "1003", actor=operator, call=call) == {}
    # The transferer (1002) consults 1003; when 1002 hangs up, 1001 and 1003 are joined.
    live_channel(lab_pbx, "PJSIP/1003-", runami)
    hangup_channel(service, callee, actor=operator)
    finish(uas)
    wait_for(lambda: CallEvent.objects.filter(kind="transfer.attended").exists(), 15, "transfer.attended", runami)
    # The consultation held 1001; once joined to 1003 the call is up again, still one CDR.
    assert Call.objects.get(pk=call.pk).state == CallState.UP
    assert Call.objects.filter(pbx=lab_pbx).count() == 1
    hangup_channel(service, caller, actor=operator)
    finish(uac)
    finish(target)
    wait_for(lambda: not Call.objects.filter(pbx=lab_pbx).live().exists(), 15, "all calls ended", runami)
    transferred = CallEvent.objects.get(kind="transfer.attended").call
    assert transferred.transfer_chain[0]["type"] == "attended"
    assert transferred.disposition == Disposition.ANSWERED
    event = audit("attended_transfer")
    assert (event.actor, event.call, event.payload["ok"]) == (operator, call, True)


def test_actions_bridge_two_live_calls(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp, operator: Any
) -> None:
    runami = start_runami()
    service = AmiService(lab_pbx.name)
    first = sipp.call("1001", "wait", hold_ms=25000)
    second = sipp.call("1003", "wait", hold_ms=25000)
    one = live_channel(lab_pbx, "PJSIP/1001-", runami)
    two = live_channel(lab_pbx, "PJSIP/1003-", runami)
    assert one.call_id != two.call_id
    assert bridge_channels(service, one.channel, two.channel, actor=operator, call=one.call) == {}
    wait_for(
        lambda: CallEvent.objects.filter(kind="bridge.enter", call__pbx=lab_pbx).count() >= 2,
        10,
        "both channels in the bridge",
        runami,
    )
    hangup_channel(service, one.channel, actor=operator)
    finish(first)
    finish(second)
    calls = ended_calls(lab_pbx, 2, runami)
    assert len(calls) == 2
    # Each call was answered by the dialplan (the Wait extension), then bridged to the other.
    assert {c.disposition for c in calls} == {Disposition.ANSWERED}
    event = audit("bridge")
    assert (event.actor, event.call, event.payload["ok"]) == (operator, one.call, True)
    assert event.payload["args"] == [one.channel, two.channel]


def test_actions_originate_a_call(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp, operator: Any
) -> None:
    runami = start_runami()
    service = AmiService(lab_pbx.name)
    phone = sipp.answer_as("1002", ring_ms=300)
    result = originate_call(service, "1002", "wait", actor=operator, timeout=10)
    assert result["success"] is True and result["reason_text"] == "ANSWERED"
    assert result["channel"].startswith("PJSIP/1002-")
    leg = live_channel(lab_pbx, "PJSIP/1002-", runami)
    hangup_channel(service, leg.channel, actor=operator)
    finish(phone)
    [call] = ended_calls(lab_pbx, 1, runami)
    assert call.disposition == Disposition.ANSWERED
    assert legs_of(call)[0] == result["channel"]
    event = audit("originate")
    assert event.actor == operator and event.payload["ok"] is True
    assert event.payload["result"]["uniqueid"] == call.uniqueid

    # A phone nobody registered: a clear failure, audited too.
    failed = originate_call(service, "1004", "wait", actor=operator, timeout=3)
    assert failed["success"] is False


# --- 4. the AMI link cut, and Asterisk restarted, mid-call ---------------------------------------------


class ProxyThread:
    """tests.lab.tcp_proxy.TcpProxy on its own loop in a thread, for a synchronous test.

    `close()` drops the links and refuses new ones (the link stays down); `open()` serves
    again on the same port.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_tcp_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy", daemon=True)
        self.thread.start()
        self.proxy: TcpProxy | None = None
        self.open()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def open(self) -> None:
        self.proxy = TcpProxy(*self.upstream, self.port)
        self._run(self.proxy.__aenter__())

    def close(self) -> None:
        if self.proxy is not None:
            self._run(self.proxy.__aexit__(None, None, None))
            self.proxy = None

    def cut(self) -> None:
        """Drop the current links; new ones are accepted at once."""
        assert self.proxy is not None
        self.loop.call_soon_threadsafe(self.proxy.cut)

    def shutdown(self) -> None:
        self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def proxy(asterisk_lab: AsteriskLab) -> Iterator[ProxyThread]:
    p = ProxyThread(asterisk_lab.host, asterisk_lab.ports.ami)
    yield p
    p.shutdown()


def asterisk_has(lab: AsteriskLab, needle: str) -> bool:
    return needle in lab.rx("core show channels concise")


def status_of(pbx: Pbx) -> dict[str, Any]:
    return AmiService(pbx.name).status()


def test_no_call_is_lost_or_left_open_when_the_ami_link_drops(
    lab_pbx: Pbx,
    start_runami: Callable[..., Runami],
    sipp: Sipp,
    proxy: ProxyThread,
    asterisk_lab: AsteriskLab,
) -> None:
    lab_pbx.port = proxy.port
    lab_pbx.save()
    runami = start_runami()
    short_callee = sipp.answer_as("1002", ring_ms=100)
    short = sipp.call("1001", "1002", hold_ms=3000)  # ends while the link is down
    long = sipp.call("1003", "wait", hold_ms=25000)  # lives through the outage
    live_channel(lab_pbx, "PJSIP/1002-", runami)
    long_leg = live_channel(lab_pbx, "PJSIP/1003-", runami)

    proxy.close()  # the link drops and stays down
    wait_for(lambda: not status_of(lab_pbx)["connected"], 10, "the listener to see the link down", runami)
    finish(short)
    finish(short_callee)
    unseen = sipp.call("1001", "wait", hold_ms=25000)  # starts while the link is down
    wait_for(lambda: asterisk_has(asterisk_lab, "PJSIP/1001-"), 10, "the unseen call in Asterisk")
    proxy.open()
    wait_for(lambda: status_of(lab_pbx)["connected"], 30, "the listener to reconnect", runami)

    short_call = Call.objects.get(pbx=lab_pbx, dialed="1002")
    wait_for(lambda: Call.objects.get(pk=short_call.pk).ended_at, 10, "the short call closed", runami)
    short_call.refresh_from_db()
    assert short_call.end_reason == DISCONNECTED_REASON
    assert short_call.disposition == Disposition.ANSWERED
    end = short_call.events.get(kind="call.end")
    assert end.payload["lost_at"] and end.payload["resynced_at"]
    # Closed at the moment the link dropped: the last time it was known to be live.
    assert short_call.ended_at.isoformat() == end.payload["lost_at"]
    assert Call.objects.get(pk=long_leg.call_id).state == CallState.UP  # still live, still tracked
    picked = live_channel(lab_pbx, "PJSIP/1001-", runami)
    assert picked.call.events.filter(kind="channel.picked_up").exists()

    proxy.cut()  # a flap: the link drops and comes straight back
    wait_for(lambda: status_of(lab_pbx)["resyncs"] >= 3, 30, "a third resync", runami)
    assert Call.objects.filter(pbx=lab_pbx).live().count() == 2

    asterisk_lab.rx("channel request hangup all")
    finish(long)
    finish(unseen)
    calls = ended_calls(lab_pbx, 3, runami)
    assert len(calls) == 3, [(c.dialed, c.linkedid) for c in calls]  # no duplicates
    by_id = {c.pk: c for c in calls}
    for pk in (long_leg.call_id, picked.call_id):
        assert by_id[pk].end_reason == "" and by_id[pk].hangup_cause is not None
        assert by_id[pk].disposition == Disposition.ANSWERED  # answered by the Wait extension
    assert not CallLeg.objects.filter(call__pbx=lab_pbx, ended_at__isnull=True).exists()


def test_no_call_is_left_open_when_asterisk_restarts_or_crashes_mid_call(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp, asterisk_lab: AsteriskLab
) -> None:
    runami = start_runami()

    def call_up() -> tuple[SippProcess, SippProcess, Call]:
        callee = sipp.answer_as("1002", ring_ms=100)
        caller = sipp.call("1001", "1002", hold_ms=25000)
        return caller, callee, live_channel(lab_pbx, "PJSIP/1002-", runami).call

    def restarted(resyncs: int) -> None:
        wait_for(lambda: status_of(lab_pbx)["resyncs"] >= resyncs, 40, "the resync after the restart", runami)

    # A clean restart: Asterisk hangs its channels up on the way down, and says so.
    caller, callee, first = call_up()
    asterisk_lab.restart()
    caller.kill()
    callee.kill()
    restarted(2)
    first = Call.objects.get(pk=first.pk)
    assert first.state == CallState.ENDED and first.disposition == Disposition.ANSWERED

    # A crash: no Hangup event ever comes; the resync on reconnect closes the call.
    caller, callee, crashed = call_up()
    assert asterisk_lab.pid is not None
    os.kill(asterisk_lab.pid, signal.SIGKILL)
    asterisk_lab.restart()  # stop() cleans up after the dead one, start() boots a new one
    caller.kill()
    callee.kill()
    restarted(3)
    crashed = Call.objects.get(pk=crashed.pk)
    assert crashed.state == CallState.ENDED
    assert crashed.end_reason == DISCONNECTED_REASON
    assert crashed.disposition == Disposition.ANSWERED
    assert crashed.ended_at >= crashed.answered_at
    assert not crashed.legs.filter(ended_at__isnull=True).exists()

    # The listener goes on with the new Asterisk.
    callee = sipp.answer_as("1002", ring_ms=100)
    finish(sipp.call("1001", "1002", hold_ms=500))
    finish(callee)
    assert len(ended_calls(lab_pbx, 3, runami)) == 3


def test_a_call_left_open_by_a_lost_hangup_is_closed_by_the_periodic_check(
    lab_pbx: Pbx, start_runami: Callable[..., Runami]
) -> None:
    runami = start_runami("--reconcile-interval", "1")
    # As if the Hangup of this call had been lost: the database says live, Asterisk has no such channel.
    ghost = Call.objects.create(pbx=lab_pbx, linkedid="1.999", uniqueid="1.999", state=CallState.UP)
    CallLeg.objects.create(call=ghost, uniqueid="1.999", channel="PJSIP/1001-0000ffff", state="Up")
    wait_for(lambda: Call.objects.get(pk=ghost.pk).ended_at, 15, "the periodic check to close it", runami)
    ghost.refresh_from_db()
    assert ghost.state == CallState.ENDED and ghost.end_reason.startswith("ended unseen")


def test_the_celery_task_runs_the_same_listener(lab_pbx: Pbx, sipp: Sipp) -> None:
    from calls.tasks import run_ami_listener

    # The task body, in a thread of this process (a worker would run it the same way).
    worker = threading.Thread(target=run_ami_listener.run, args=(lab_pbx.pk, 8.0), daemon=True)
    worker.start()
    wait_for(lambda: is_connected(AmiService(lab_pbx.name)), 15, "the task's listener to connect")
    callee = sipp.answer_as("1002", ring_ms=100)
    finish(sipp.call("1001", "1002", hold_ms=500))
    finish(callee)
    wait_for(lambda: Call.objects.filter(pbx=lab_pbx, state=CallState.ENDED).exists(), 10, "the call's CDR")
    worker.join(15)
    assert not worker.is_alive()
    assert status_of(lab_pbx)["listener"] is False  # it said it stopped


# --- 5. a burst of calls ---------------------------------------------------------------------------------


def test_a_burst_of_200_calls_gives_200_correct_cdrs(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp
) -> None:
    runami = start_runami()
    n = 200
    callee = sipp.answer_as("1002", ring_ms=100, calls=n, timeout=90)
    callers = sipp.call("1001", "1002", hold_ms=1000, calls=n, rate=10, timeout=90)
    finish(callers, 120)
    finish(callee, 30)
    calls = ended_calls(lab_pbx, n, runami, timeout=60)
    assert len(calls) == n
    assert len({c.linkedid for c in calls}) == n
    assert {c.disposition for c in calls} == {Disposition.ANSWERED}
    assert {c.hangup_cause for c in calls} == {16}
    assert all(c.state == CallState.ENDED for c in calls)
    # SIPp held each call for 1 s after a 0.1 s ring; whole seconds, so within a second.
    assert all(0 <= c.ring_seconds <= 1 for c in calls), sorted(c.ring_seconds for c in calls)
    assert all(1 <= c.talk_seconds <= 2 for c in calls), sorted(c.talk_seconds for c in calls)
    assert all(c.duration_seconds <= 3 for c in calls), sorted(c.duration_seconds for c in calls)
    assert CallLeg.objects.filter(call__pbx=lab_pbx).count() == 2 * n
    assert CallEvent.objects.filter(call__pbx=lab_pbx, kind="call.end").count() == n
    assert status_of(lab_pbx)["events_skipped"] == 0


# --- 6. one active listener, one standby --------------------------------------------------------------------


def test_a_second_runami_waits_as_standby_and_takes_over(
    lab_pbx: Pbx, start_runami: Callable[..., Runami], sipp: Sipp
) -> None:
    first = start_runami("--lock-ttl", "3")
    second = start_runami("--lock-ttl", "3", wait=False)
    wait_for(lambda: "standby" in second.output(), 15, "the second instance to stand by", second)
    assert f":{first.proc.pid}:" in status_of(lab_pbx)["owner"]

    callee = sipp.answer_as("1002", ring_ms=100)
    caller = sipp.call("1001", "1002", hold_ms=8000)
    live_channel(lab_pbx, "PJSIP/1002-", first)
    first.stop(signal.SIGKILL)  # no clean release: the lock has to expire
    wait_for(
        lambda: f":{second.proc.pid}:" in status_of(lab_pbx).get("owner", "") and status_of(lab_pbx)["connected"],
        20,
        "the standby to take over",
        second,
    )
    finish(caller)
    finish(callee)
    [call] = ended_calls(lab_pbx, 1, second)
    # The standby picked the call up from the database and saw it end.
    assert call.end_reason == ""
    assert call.disposition == Disposition.ANSWERED and call.hangup_cause == 16
    assert call.talk_seconds >= 7
    assert call.legs.count() == 2
    assert "active" in second.output()
