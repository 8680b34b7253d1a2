"""Errors the SIP stack raises, and the one the application raises to reject."""

from __future__ import annotations

from .message import REASONS, SipResponse


class SipError(Exception):
    """Base class of the stack's errors."""


class InvalidStateError(SipError, RuntimeError):
    """The operation is not allowed in the object's current state."""


class SipStatusError(SipError):
    """A request failed with a SIP status, or the application answers one.

    Raise it from ``on_reinvite`` to reject an offer (e.g. ``SipStatusError(488)``).
    A failed request of ours carries the ``response`` (a local 408 on timeout).
    """

    def __init__(self, status: int, reason: str | None = None,
                 response: SipResponse | None = None) -> None:
        self.status = status
        self.reason = reason or REASONS.get(status, "Unknown")
        self.response = response
        super().__init__(f"{status} {self.reason}")


class CallFailed(SipStatusError):
    """An outgoing call ended without being answered (rejected, cancelled, timed out)."""
