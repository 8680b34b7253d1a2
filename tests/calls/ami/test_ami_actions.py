"""AMI action builders, error mapping and OriginateResult."""

from __future__ import annotations

import pytest

from calls.ami import actions
from calls.ami.actions import OriginateReason, OriginateResult
from calls.ami.errors import AmiError, ChannelGone
from calls.ami.events import AmiEvent, AmiResponse


@pytest.mark.parametrize(("action", "expected"), [
    ({"Action": "Originate"}, "true"),
    ({"Action": "originate"}, "true"),
    ({"Action": "Hangup"}, "false"),
    ({"Action": "Originate", "async": "false"}, None),  # the caller's choice is kept
])
def test_it_always_sends_async(action: dict[str, str], expected: str | None) -> None:
    result = actions.with_async(action)
    assert any(k.lower() == "async" for k in result)
    if expected is not None:
        assert result["Async"] == expected
    assert "Async" not in action or action == result  # the input is not modified


def test_it_builds_originate_with_ms_timeout_and_variables() -> None:
    action = actions.originate("PJSIP/1001", "wait", "from-phones", timeout=2.5,
                               callerid="Bridge <1000>", variables={"A": "1"})
    assert action["Timeout"] == "2500"
    assert action["Async"] == "true"
    assert action["CallerID"] == "Bridge <1000>"
    assert action["Variable"] == ["A=1"]


@pytest.mark.parametrize(("message", "error"), [
    ("No such channel", ChannelGone),
    ("Channel does not exist: PJSIP/x-1", ChannelGone),
    ("Channel1 does not exist: PJSIP/x-1", ChannelGone),
    ("Channel specified does not exist", ChannelGone),
    ("Channel not found", ChannelGone),
    ("Extension does not exist.", AmiError),
    ("Transfer invalid", AmiError),
    ("Permission denied", AmiError),
])
def test_it_maps_error_replies(message: str, error: type[AmiError]) -> None:
    response = AmiResponse([("Response", "Error"), ("Message", message)])
    with pytest.raises(error) as info:
        actions.raise_for_response({"Action": "Hangup", "Channel": "PJSIP/x-1"}, response)
    assert type(info.value) is error
    assert message in str(info.value)


def test_it_passes_success_through() -> None:
    response = AmiResponse([("Response", "Success")])
    assert actions.raise_for_response({"Action": "Ping"}, response) is response


def test_it_reads_the_originate_response() -> None:
    event = AmiEvent([("Event", "OriginateResponse"), ("Response", "Failure"),
                      ("Channel", "PJSIP/1004"), ("Reason", "5"), ("Uniqueid", "<unknown>")])
    result = OriginateResult.from_response(AmiResponse([("Response", "Success")], [event]))
    assert not result.success
    assert result.reason is OriginateReason.BUSY
    assert result.channel == "PJSIP/1004"


def test_it_fails_clearly_without_originate_response() -> None:
    with pytest.raises(AmiError, match="no OriginateResponse"):
        OriginateResult.from_response(AmiResponse([("Response", "Success")]))


def test_it_parses_unknown_reasons_as_failed() -> None:
    assert OriginateReason.parse("99") is OriginateReason.FAILED
    assert OriginateReason.parse("x") is OriginateReason.FAILED
