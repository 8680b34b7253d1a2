"""CallTracker fed AMI events as dicts: dispositions, times, resync, and bad input.

The lab tests (tests/integration/test_listener.py) prove the same against a real Asterisk;
here each rule is pinned with exact timestamps, and malformed events are easy to make.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, transaction

from calls.models import Call, CallEvent, CallLeg, CallState, Disposition, Pbx
from calls.tracker import DISCONNECTED_REASON, CallTracker

T0 = 1_800_000_000.0


@pytest.fixture
def pbx(db) -> Pbx:
    return Pbx.objects.create(name="unit", username="u", secret="s", context="from-phones")


@pytest.fixture
def published() -> list[tuple[int, str]]:
    return []


@pytest.fixture
def tracker(pbx: Pbx, published: list[tuple[int, str]]) -> CallTracker:
    return CallTracker(pbx, lambda call, kind: published.append((call.pk, kind)))


def ev(name: str, t: float, **headers: str) -> dict[str, str]:
    return {"Event": name, "Timestamp": f"{T0 + t:.6f}", **headers}


def chan(uid: str, linkedid: str, channel: str, **extra: str) -> dict[str, str]:
    return {"Uniqueid": uid, "Linkedid": linkedid, "Channel": channel, **extra}


CALLER = chan("1.0", "1.0", "PJSIP/1001-00000000", CallerIDNum="1001", Exten="1002")
CALLEE = chan("1.1", "1.0", "PJSIP/1002-00000001", CallerIDNum="1002", Exten="s")


def dial(t: float, status: str | None = None) -> dict[str, str]:
    name = "DialEnd" if status else "DialBegin"
    extra = {"DialStatus": status} if status else {"DialString": "1002"}
    return ev(name, t, **CALLER, DestChannel=CALLEE["Channel"], DestUniqueid="1.1", **extra)


def feed(tracker: CallTracker, events: list[dict[str, str]]) -> Call:
    for e in events:
        tracker.handle(e)
    return Call.objects.get(linkedid="1.0")


def at(t: float) -> datetime:
    return datetime.fromtimestamp(T0 + t, tz=UTC)


def answered_call(hangup_at: float = 12.5) -> list[dict[str, str]]:
    return [
        ev("Newchannel", 0, **CALLER, ChannelStateDesc="Ring"),
        ev("Newchannel", 0.1, **CALLEE, ChannelStateDesc="Down"),
        dial(0.1),
        ev("Newstate", 0.2, **CALLEE, ChannelStateDesc="Ringing"),
        ev("Newstate", 4.1, **CALLEE, ChannelStateDesc="Up"),
        dial(4.1, "ANSWER"),
        ev("Newstate", 4.1, **CALLER, ChannelStateDesc="Up"),
        ev("BridgeEnter", 4.2, **CALLEE, BridgeUniqueid="b1"),
        ev("BridgeEnter", 4.2, **CALLER, BridgeUniqueid="b1"),
        ev("Hangup", hangup_at, **CALLER, Cause="16", **{"Cause-txt": "Normal Clearing"}),
        ev("Hangup", hangup_at + 0.01, **CALLEE, Cause="16", **{"Cause-txt": "Normal Clearing"}),
    ]


def test_it_records_an_answered_call_with_exact_times(tracker: CallTracker, published: list) -> None:
    call = feed(tracker, answered_call())
    assert call.state == CallState.ENDED and call.disposition == Disposition.ANSWERED
    assert (call.started_at, call.ringing_at, call.answered_at) == (at(0), at(0.1), at(4.1))
    assert (call.ring_seconds, call.talk_seconds, call.duration_seconds) == (4, 8, 13)
    assert (call.hangup_cause, call.hangup_cause_text) == (16, "Normal Clearing")
    assert call.caller_number == "1001" and call.dialed == "1002"
    assert [leg.channel for leg in call.legs.all()] == [CALLER["Channel"], CALLEE["Channel"]]
    assert list(call.events.values_list("kind", flat=True)) == [
        "channel.new", "channel.new", "dial.begin", "dial.end", "bridge.enter", "bridge.enter",
        "channel.hangup", "channel.hangup", "call.end",
    ]
    assert published[-1] == (call.pk, "end")
    assert tracker.calls == {} and tracker.by_uniqueid == {}
    assert (tracker.events_handled, tracker.events_skipped) == (11, 0)


@pytest.mark.parametrize(
    ("status", "cause", "disposition"),
    [
        ("BUSY", "17", Disposition.BUSY),
        ("CANCEL", "16", Disposition.NO_ANSWER),
        ("NOANSWER", "19", Disposition.NO_ANSWER),
        ("CHANUNAVAIL", "20", Disposition.FAILED),
        ("CONGESTION", "34", Disposition.FAILED),
    ],
)
def test_it_gives_the_disposition_of_an_unanswered_dial(
    tracker: CallTracker, status: str, cause: str, disposition: str
) -> None:
    call = feed(tracker, [
        ev("Newchannel", 0, **CALLER, ChannelStateDesc="Ring"),
        ev("Newchannel", 0.1, **CALLEE, ChannelStateDesc="Down"),
        dial(0.1),
        ev("Hangup", 3, **CALLEE, Cause=cause),
        dial(3, status),
        ev("Hangup", 3.2, **CALLER, Cause=cause),
    ])
    assert call.disposition == disposition
    assert call.answered_at is None and call.talk_seconds == 0
    assert call.ring_seconds == 3 and call.hangup_cause == int(cause)


def test_a_call_the_dialplan_answers_is_up_and_answered(tracker: CallTracker) -> None:
    tracker.handle(ev("Newchannel", 0, **CALLER, ChannelStateDesc="Ring"))
    tracker.handle(ev("Newstate", 0.5, **CALLER, ChannelStateDesc="Up"))
    assert Call.objects.get().state == CallState.UP
    call = feed(tracker, [ev("Hangup", 10.5, **CALLER, Cause="16")])
    assert call.disposition == Disposition.ANSWERED
    assert call.answered_at == at(0.5) and call.talk_seconds == 10


def test_it_skips_malformed_and_unknown_events_and_goes_on(
    tracker: CallTracker, caplog: pytest.LogCaptureFixture
) -> None:
    tracker.handle({"Event": "Newchannel", "Channel": "PJSIP/x-1"})  # no Uniqueid
    tracker.handle({"Event": "Hangup", "Uniqueid": "nobody"})  # a channel we never saw
    tracker.handle({"Event": "SomethingNew", "Uniqueid": "1.0"})  # not ours: ignored
    tracker.handle({"Event": "Newstate"})  # nothing to find
    tracker.handle({})  # not even a name
    tracker.handle(ev("Newchannel", 0, **CALLER, Timestamp="not a time"))  # time falls back to now
    assert tracker.events_skipped == 1
    assert "skipped event" in caplog.text
    call = feed(tracker, answered_call()[1:])
    assert call.disposition == Disposition.ANSWERED


def test_a_failure_mid_event_leaves_no_half_call_behind(
    tracker: CallTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = CallLeg.objects.create

    def fail_once(**kwargs: object) -> CallLeg:
        monkeypatch.setattr(CallLeg.objects, "create", create)
        raise ValueError("a leg the database refused")

    monkeypatch.setattr(CallLeg.objects, "create", fail_once)
    tracker.handle(ev("Newchannel", 0, **CALLER))  # the Call row was made, then rolled back
    assert tracker.events_skipped == 1
    assert not Call.objects.exists() and tracker.calls == {}
    call = feed(tracker, answered_call())
    assert call.disposition == Disposition.ANSWERED and call.legs.count() == 2


def test_deferred_timeline_rows_are_written_at_the_end_and_none_for_a_failed_event(
    tracker: CallTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():  # the same call, written event by event
        reference = feed(CallTracker(tracker.pbx), answered_call())
        expected = list(reference.events.order_by("id").values_list("kind", flat=True))
        raise Undo

    publish = tracker.publish

    def fail_once(call: Call, kind: str) -> None:  # after the event's timeline row was noted
        tracker.publish = publish
        raise ValueError("a board that refused the call")

    tracker.publish = fail_once
    with transaction.atomic(), tracker.deferred_events():
        tracker.handle(ev("Newchannel", 0, **CALLER))
        assert tracker.events_skipped == 1 and tracker.calls == {}
        call = feed(tracker, answered_call())
        assert not CallEvent.objects.exists()  # one INSERT for the whole batch, at its end
    kinds = list(call.events.order_by("id").values_list("kind", flat=True))
    assert kinds == expected and len(kinds) > 5


def test_a_database_outage_is_raised_for_the_listener_to_retry(
    tracker: CallTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(CallLeg.objects, "create", down)
    with pytest.raises(OperationalError):
        tracker.handle(ev("Newchannel", 0, **CALLER))
    assert tracker.events_skipped == 0 and tracker.calls == {}
    monkeypatch.undo()
    call = feed(tracker, answered_call())  # the retried event goes through
    assert call.legs.count() == 2


def test_a_new_tracker_goes_on_from_the_database(pbx: Pbx, tracker: CallTracker) -> None:
    events = answered_call()
    feed(tracker, events[:6])
    successor = CallTracker(pbx)
    successor.load()
    call = feed(successor, events[6:])
    assert call.disposition == Disposition.ANSWERED and call.answered_at == at(4.1)
    assert call.events.filter(kind="call.end").count() == 1


def test_resync_closes_calls_that_ended_unseen_and_picks_up_live_ones(tracker: CallTracker) -> None:
    feed(tracker, answered_call()[:7])
    lost = at(6)
    other = chan("2.0", "2.0", "PJSIP/1003-00000005", CallerIDNum="1003", Exten="wait")
    result = tracker.resync([{**other, "ChannelStateDesc": "Up", "Duration": "00:00:07"}], lost_at=lost)
    assert result == {"live": 1, "closed": 1, "picked_up": 1}
    ended = Call.objects.get(linkedid="1.0")
    assert ended.state == CallState.ENDED and ended.end_reason == DISCONNECTED_REASON
    assert ended.ended_at == lost and ended.talk_seconds == 2
    assert not ended.legs.filter(ended_at__isnull=True).exists()
    picked = Call.objects.get(linkedid="2.0")
    assert picked.state == CallState.UP and picked.caller_number == "1003"
    assert picked.events.filter(kind="channel.picked_up").count() == 1
    # The picked-up call then ends normally, seen.
    tracker.handle(ev("Hangup", 30, **other, Cause="16"))
    picked.refresh_from_db()
    assert picked.state == CallState.ENDED and picked.end_reason == ""
    assert picked.disposition == Disposition.ANSWERED


def test_resync_trusts_events_newer_than_its_snapshot(tracker: CallTracker) -> None:
    feed(tracker, answered_call()[:7])
    gone = chan("3.0", "3.0", "PJSIP/1004-00000009", Exten="wait")
    tracker.begin_resync()  # CoreShowChannels sent; events keep coming meanwhile
    tracker.handle(ev("Newchannel", 8, **chan("4.0", "4.0", "PJSIP/1003-0000000a", Exten="wait")))
    tracker.handle(ev("Hangup", 8, **gone, Cause="16"))
    # The snapshot: taken before 4.0 existed, while 3.0 still did.
    snapshot = [{**CALLER, "ChannelStateDesc": "Up"}, {**CALLEE, "ChannelStateDesc": "Up"}, gone]
    result = tracker.resync(snapshot, lost_at=at(7))
    assert result["closed"] == 0 and result["picked_up"] == 0
    assert Call.objects.get(linkedid="4.0").state == CallState.RINGING  # not closed
    assert not Call.objects.filter(linkedid="3.0").exists()  # not resurrected
    assert Call.objects.get(linkedid="1.0").state == CallState.UP


def test_transfers_are_chained_and_the_call_stays_up(tracker: CallTracker) -> None:
    feed(tracker, answered_call()[:9])
    tracker.handle(ev("Hold", 5, **CALLER))
    assert Call.objects.get().state == CallState.HELD
    tracker.handle(ev(
        "AttendedTransfer", 6, OrigTransfererUniqueid="1.1", OrigTransfererChannel=CALLEE["Channel"],
        SecondTransfererConnectedLineNum="1003", Result="Success",
    ))
    tracker.handle(ev(
        "BlindTransfer", 7, TransfererUniqueid="1.0", TransfererChannel=CALLER["Channel"],
        Extension="wait", Context="from-phones", Result="Success",
    ))
    call = Call.objects.get()
    assert call.state == CallState.UP
    assert [(s["type"], s["to"]) for s in call.transfer_chain] == [("attended", "1003"), ("blind", "wait")]
    assert CallEvent.objects.filter(kind__startswith="transfer.").count() == 2


def test_the_bridge_call_user_event_maps_the_call(tracker: CallTracker, departments, cc_app) -> None:
    from tests.conftest import make_mapping

    mapping = make_mapping(departments[0], cc_app, "sip:vendas@empresa.com")
    vendas = chan("5.0", "5.0", "PJSIP/1001-00000010", CallerIDNum="1001", Exten="vendas")
    tracker.handle(ev("Newchannel", 0, **vendas))
    tracker.handle(ev("UserEvent", 0.1, **vendas, UserEvent="BridgeCall", SipUri="sip:vendas@empresa.com"))
    call = Call.objects.get()
    assert (call.mapping, call.department, call.dialed) == (mapping, departments[0], "sip:vendas@empresa.com")
    # Events recorded from then on carry the department.
    tracker.handle(ev("Hangup", 1, **vendas, Cause="16"))
    assert call.events.get(kind="call.end").department == departments[0]


def test_resync_with_no_lost_time_closes_at_now(tracker: CallTracker) -> None:
    feed(tracker, answered_call()[:7])
    before = datetime.now(tz=UTC)
    tracker.resync([])
    call = Call.objects.get()
    assert call.ended_at >= before - timedelta(seconds=1)
    assert call.end_reason == DISCONNECTED_REASON
