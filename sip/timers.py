"""SIP timer values (RFC 3261 §17 and Table 4, RFC 6026 §8.4), configurable for tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timers:
    """The base timers; every transaction timer derives from them."""

    t1: float = 0.5  # RTT estimate (RFC 3261 §17.1.1.1)
    t2: float = 4.0  # cap on non-INVITE request and INVITE response retransmit intervals
    t4: float = 5.0  # longest a message stays in the network
    d: float = 32.0  # Timer D: wait for response retransmits after ACKing a non-2xx (UDP: >= 32 s)

    @property
    def a(self) -> float:
        """Timer A: first INVITE retransmit interval, doubling each time."""
        return self.t1

    @property
    def b(self) -> float:
        """Timer B: INVITE transaction timeout."""
        return 64 * self.t1

    @property
    def e(self) -> float:
        """Timer E: first non-INVITE retransmit interval (doubles up to T2)."""
        return self.t1

    @property
    def f(self) -> float:
        """Timer F: non-INVITE transaction timeout."""
        return 64 * self.t1

    @property
    def g(self) -> float:
        """Timer G: first INVITE final-response retransmit interval (doubles up to T2)."""
        return self.t1

    @property
    def h(self) -> float:
        """Timer H: wait for the ACK to a non-2xx final response."""
        return 64 * self.t1

    @property
    def i(self) -> float:
        """Timer I: absorb ACK retransmits after Confirmed."""
        return self.t4

    @property
    def j(self) -> float:
        """Timer J: absorb non-INVITE request retransmits (UDP)."""
        return 64 * self.t1

    @property
    def k(self) -> float:
        """Timer K: absorb non-INVITE response retransmits (UDP)."""
        return self.t4

    @property
    def l(self) -> float:  # noqa: E743 - the RFC's name
        """Timer L (RFC 6026): server INVITE transaction stays Accepted for 2xx retransmits."""
        return 64 * self.t1

    @property
    def m(self) -> float:
        """Timer M (RFC 6026): client INVITE transaction stays Accepted for forked 2xx."""
        return 64 * self.t1

    @property
    def ack_wait(self) -> float:
        """How long the UAS core resends a 2xx before giving up (RFC 3261 §13.3.1.4)."""
        return 64 * self.t1


DEFAULT_TIMERS = Timers()
