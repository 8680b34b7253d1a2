"""RFC 4733 telephone-event payloads (media.rtp.dtmf)."""

import pytest

from media.rtp.dtmf import DtmfDetector, TelephoneEvent, digit_event, event_packets


@pytest.mark.parametrize("digit,code", [("0", 0), ("9", 9), ("*", 10), ("#", 11), ("a", 12)])
def test_it_maps_digits_to_event_codes(digit, code):
    assert digit_event(digit) == code
    assert TelephoneEvent(code).digit == digit.upper()


@pytest.mark.parametrize("digit", ["x", "", "12", " "])
def test_it_rejects_non_digits(digit):
    with pytest.raises(ValueError):
        digit_event(digit)


def test_it_round_trips_a_payload():
    event = TelephoneEvent(11, end=True, volume=10, duration=800)
    data = bytes(event)
    assert data == b"\x0b\x8a\x03\x20"
    assert TelephoneEvent.parse(data) == event
    with pytest.raises(ValueError):
        TelephoneEvent.parse(b"\x01\x02")


def test_it_sends_updates_then_three_end_packets():
    packets = list(event_packets("5", 800, 160))
    durations = [e.duration for e, _ in packets]
    assert durations == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e, _ in packets] == [False] * 4 + [True] * 3
    assert [m for _, m in packets] == [True] + [False] * 6
    assert {e.event for e, _ in packets} == {5}


def test_it_reports_each_digit_once_despite_redundancy_and_loss():
    digits = []
    detector = DtmfDetector(digits.append)
    for event, _ in event_packets("1", 800, 160):
        detector.feed(1, 1000, bytes(event))
    # A second event whose start and updates were lost: only end packets arrive.
    for _ in range(3):
        detector.feed(1, 2000, bytes(TelephoneEvent(10, end=True, duration=800)))
    # The same digit again is a new event (new timestamp).
    detector.feed(1, 3000, bytes(TelephoneEvent(1, duration=160)))
    assert digits == ["1", "*", "1"]
    with pytest.raises(ValueError):
        detector.feed(1, 4000, b"\x00")
