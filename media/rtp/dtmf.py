"""RFC 4733 telephone-event payloads for DTMF digits 0-9, *, #, A-D."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

DIGITS = "0123456789*#ABCD"
EVENT = struct.Struct("!BBH")
# RFC 4733 section 2.5.1.4: the end packet is sent three times so that one loss does not lose it.
END_REPEATS = 3
DEFAULT_VOLUME = 10  # -10 dBm0, the usual value in the wild
MAX_DURATION = 0xFFFF


def digit_event(digit: str) -> int:
    """Return the event code of a DTMF digit; raise ValueError for anything else."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


@dataclass(frozen=True)
class TelephoneEvent:
    """One RFC 4733 payload: event code, end bit, volume (-dBm0) and duration (samples)."""

    event: int
    end: bool = False
    volume: int = DEFAULT_VOLUME
    duration: int = 0

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if self.event < len(DIGITS) else None

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Parse a telephone-event payload; raise ValueError if it is not one."""
        if len(data) < 4:
            raise ValueError(f"telephone-event payload is {len(data)} bytes, needs 4")
        event, flags, duration = EVENT.unpack_from(data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        return EVENT.pack(self.event, (0x80 if self.end else 0) | (self.volume & 0x3F),
                          self.duration)


def event_packets(digit: str, duration: int, step: int) -> Iterator[tuple[TelephoneEvent, bool]]:
    """Yield (payload, marker) for one digit lasting `duration` samples, one packet per `step`.

    All packets of an event share the event's RTP timestamp; only the duration grows. The first
    carries the marker bit and the last is repeated END_REPEATS times with the end bit set.
    """
    event = digit_event(digit)
    duration = min(max(duration, step), MAX_DURATION)
    elapsed = step
    first = True
    while elapsed < duration:
        yield TelephoneEvent(event, duration=elapsed), first
        first = False
        elapsed += step
    for _ in range(END_REPEATS):
        yield TelephoneEvent(event, end=True, duration=duration), first
        first = False


class DtmfDetector:
    """Turn received telephone-event packets into one callback per digit.

    A digit is reported on the first packet of its event (keyed by SSRC and RTP timestamp), so
    retransmitted updates, redundant end packets and a lost start packet all give one report.
    """

    def __init__(self, on_digit: Callable[[str], None]) -> None:
        self._on_digit = on_digit
        self._last: tuple[int, int] | None = None

    def feed(self, ssrc: int, timestamp: int, payload: bytes) -> None:
        """Handle one telephone-event payload; raise ValueError if it is malformed."""
        event = TelephoneEvent.parse(payload)
        key = (ssrc, timestamp)
        if key == self._last:
            return
        self._last = key
        digit = event.digit
        if digit is not None:
            self._on_digit(digit)
