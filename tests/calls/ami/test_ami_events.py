"""AmiEvent / AmiResponse: immutable, case-insensitive AMI messages."""

from __future__ import annotations

import pytest
from panoramisk.message import Message

from calls.ami.events import (
    AmiEvent,
    AmiResponse,
    event_from_message,
    response_from_messages,
)


def test_it_looks_headers_up_case_insensitively() -> None:
    event = AmiEvent([("Event", "Hangup"), ("Channel", "PJSIP/1001-1"), ("Cause", "16")])
    assert event.name == "Hangup"
    assert event["channel"] == event["CHANNEL"] == "PJSIP/1001-1"
    assert "cause" in event and "nope" not in event
    assert dict(event) == {"Event": "Hangup", "Channel": "PJSIP/1001-1", "Cause": "16"}


def test_it_is_immutable_and_hashable() -> None:
    event = AmiEvent([("Event", "Newchannel")])
    with pytest.raises(AttributeError):
        event.foo = "bar"  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        event["Event"] = "x"  # type: ignore[index]
    assert hash(event) == hash(AmiEvent([("Event", "Newchannel")]))


def test_it_keeps_repeated_headers() -> None:
    event = AmiEvent([("Event", "VarSet"), ("ChanVariable", "A=1"), ("ChanVariable", "B=2")])
    assert event["ChanVariable"] == "A=1"
    assert event.getall("chanvariable") == ("A=1", "B=2")
    assert len(event) == 2


def test_it_builds_events_from_panoramisk_messages() -> None:
    message = Message.from_line("Event: Newstate\r\nChannel: PJSIP/1002-2\r\nVar: a\r\nVar: b")
    event = event_from_message(message)
    assert event.name == "Newstate"
    assert event.getall("Var") == ("a", "b")


@pytest.mark.parametrize("raw", [
    "Event: \r\nChannel: x",
    "Event: bad name!\r\nChannel: x",
])
def test_it_rejects_malformed_events(raw: str) -> None:
    with pytest.raises(ValueError, match="malformed AMI event"):
        event_from_message(Message.from_line(raw))


def test_it_rejects_a_repeated_event_name() -> None:
    message = Message.from_line("Event: A\r\nEvent: B")
    with pytest.raises(ValueError):
        event_from_message(message)


def test_it_cuts_huge_header_values() -> None:
    event = AmiEvent([("Event", "X"), ("Data", "a" * 100_000)])
    assert len(event["Data"]) == 8192


def test_it_builds_a_response_with_list_events() -> None:
    messages = [
        Message({"Response": "Success", "EventList": "start", "Message": "will follow"}),
        Message({"Event": "CoreShowChannel", "Channel": "PJSIP/1001-1"}),
        Message({"Event": "Event with spaces"}),
        Message({"Event": "CoreShowChannelsComplete", "ListItems": "1"}),
    ]
    response = response_from_messages(messages)
    assert isinstance(response, AmiResponse)
    assert response.success and response.message == "will follow"
    # The malformed middle event is skipped, not fatal.
    assert [e.name for e in response.events] == ["CoreShowChannel", "CoreShowChannelsComplete"]
    assert "2 events" in repr(response)


def test_it_reports_an_error_response() -> None:
    response = response_from_messages(Message({"Response": "Error", "Message": "No such channel"}))
    assert not response.success
    assert response.message == "No such channel"
