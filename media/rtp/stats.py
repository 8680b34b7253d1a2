"""Per-stream RTP statistics: RFC 3550 appendix A.1 sequence tracking, A.3 loss and A.8 jitter."""

from __future__ import annotations

from dataclasses import dataclass

MAX_DROPOUT = 3000
MAX_MISORDER = 100
SEQ_MOD = 1 << 16


class ReceiveStats:
    """Count what one SSRC sent us: packets, bytes, loss from sequence gaps, interarrival jitter.

    `arrival` is in the stream's clock units (samples), so jitter comes out in samples too.
    """

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.packets = 0
        self.bytes = 0
        self.ssrc: int | None = None
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._jitter = 0.0
        self._transit: int | None = None
        self._packets_at_reset = 0
        self._lost_before = 0

    def reset(self, ssrc: int, seq: int) -> None:
        """Start over for a new source (the phone changed its SSRC after a re-INVITE)."""
        self._lost_before = self.lost
        self._packets_at_reset = self.packets
        self.ssrc = ssrc
        self._base_seq = seq
        self._max_seq = seq
        self._cycles = 0
        self._transit = None

    def add(self, ssrc: int, seq: int, timestamp: int, size: int, arrival: float) -> None:
        """Account one packet of `size` payload bytes that arrived at `arrival` seconds."""
        if ssrc != self.ssrc:
            self.reset(ssrc, seq)
        else:
            delta = (seq - self._max_seq) % SEQ_MOD
            if delta < MAX_DROPOUT:
                if seq < self._max_seq:
                    self._cycles += SEQ_MOD
                self._max_seq = seq
            elif delta <= SEQ_MOD - MAX_MISORDER:
                # A big jump: the sender restarted its sequence; treat as a new stream.
                self.reset(ssrc, seq)
        self.packets += 1
        self.bytes += size
        transit = int(arrival * self.clock_rate) - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 1 << 31:
                self._jitter += (d - self._jitter) / 16
        self._transit = transit

    @property
    def expected(self) -> int:
        """Packets expected from the current source (highest extended seq - base + 1)."""
        if self.ssrc is None:
            return 0
        return self._cycles + self._max_seq - self._base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost over all sources (duplicates can make it negative)."""
        if self.ssrc is None:
            return 0
        current = self.expected - (self.packets - self._packets_at_reset)
        return self._lost_before + current

    @property
    def jitter(self) -> float:
        """Interarrival jitter in samples."""
        return self._jitter

    @property
    def jitter_ms(self) -> float:
        return 1000 * self._jitter / self.clock_rate


@dataclass
class SendStats:
    packets: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.packets += 1
        self.bytes += size
