"""The four SIP transaction state machines (RFC 3261 §17, amended by RFC 6026) over UDP.

Each machine is an object with one ``_set_state`` and its timers as
``_timer_x_start/_timer_x_cancel/_timer_x_expired``. The transaction user
(the endpoint, dialogs and calls) gets responses through ``on_response`` and
is told of the end through ``on_terminated``.

RFC 6026: a 2xx to INVITE moves both INVITE transactions to Accepted; the
2xx retransmissions (server side) and the ACK for a 2xx (client side) are the
transaction user's job, and a retransmitted 2xx is passed up, not absorbed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from .errors import InvalidStateError
from .message import Headers, SipRequest, SipResponse
from .timers import Timers
from .transport import Addr

logger = logging.getLogger(__name__)

Send = Callable[[bytes, Addr], None]


class TransactionState(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


def transaction_key(message: SipRequest | SipResponse) -> tuple[str, ...]:
    """Return the key a message matches its transaction by (RFC 3261 §17.1.3, §17.2.3).

    Responses and requests use the same shape, so a CANCEL (same branch as
    its INVITE) gets its own transaction and an ACK for a non-2xx joins the
    INVITE's. For pre-3261 peers without the magic cookie, fall back to the
    dialog-ish identifiers.
    """
    via = message.top_via
    number, method = message.cseq
    if isinstance(message, SipRequest):
        method = "INVITE" if message.method == "ACK" else message.method
    branch = via.branch or ""
    if branch.startswith("z9hG4bK"):
        return (branch, via.sent_by, method)
    return ("rfc2543", message.call_id, message.from_.tag or "", str(number), via.sent_by, method)


class _Transaction:
    """State and timer plumbing shared by the four machines."""

    kind = "transaction"

    def __init__(self, request: SipRequest, addr: Addr, send: Send, timers: Timers,
                 on_terminated: Callable[[_Transaction], None] | None = None) -> None:
        self.request = request
        self.addr = addr  # where responses (server) or requests (client) go
        self.key = transaction_key(request)
        self.state: TransactionState | None = None
        self._send = send
        self._timers = timers
        self._loop = asyncio.get_running_loop()
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._on_terminated = on_terminated

    def _set_state(self, state: TransactionState) -> None:
        if state == self.state:
            return
        logger.debug("%s %s %s - %s -> %s", self.kind, self.request.method, self.key[0],
                     self.state.value if self.state else "new", state.value)
        self.state = state
        if state == TransactionState.TERMINATED:
            for handle in self._handles.values():
                handle.cancel()
            self._handles.clear()
            if self._on_terminated is not None:
                self._on_terminated(self)

    def _start(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel(name)
        self._handles[name] = self._loop.call_later(delay, callback)

    def _cancel(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _transmit(self, data: bytes) -> None:
        try:
            self._send(data, self.addr)
        except (ConnectionError, OSError) as exc:
            logger.warning("%s: cannot send to %s:%s: %s", self.kind, *self.addr, exc)

    @property
    def terminated(self) -> bool:
        return self.state == TransactionState.TERMINATED

    def terminate(self) -> None:
        """Stop all timers and forget the transaction (on endpoint close)."""
        self._set_state(TransactionState.TERMINATED)


# --- server side ------------------------------------------------------------------------------


class ServerInviteTransaction(_Transaction):
    """RFC 3261 §17.2.1 with RFC 6026's Accepted state."""

    kind = "ist"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.last_response: bytes | None = None
        self._g_interval = self._timers.g
        self._set_state(TransactionState.PROCEEDING)

    def receive_request(self, request: SipRequest) -> None:
        """Handle a retransmitted INVITE or an ACK for our non-2xx final."""
        if request.method == "INVITE":
            # Resend the last provisional (Proceeding) or final (Completed); Accepted absorbs.
            if self.state in (TransactionState.PROCEEDING, TransactionState.COMPLETED):
                if self.last_response is not None:
                    self._transmit(self.last_response)
        elif request.method == "ACK" and self.state == TransactionState.COMPLETED:
            self._timer_g_cancel()
            self._timer_h_cancel()
            self._set_state(TransactionState.CONFIRMED)
            self._timer_i_start()

    def send_response(self, response: SipResponse) -> None:
        data = bytes(response)
        if self.state == TransactionState.PROCEEDING:
            self.last_response = data
            if response.status < 200:
                self._transmit(data)
            elif response.status < 300:
                self._set_state(TransactionState.ACCEPTED)
                self._timer_l_start()
                self._transmit(data)
            else:
                self._set_state(TransactionState.COMPLETED)
                self._transmit(data)
                self._timer_g_start()
                self._timer_h_start()
        elif self.state == TransactionState.ACCEPTED and 200 <= response.status < 300:
            self._transmit(data)  # a 2xx retransmission from the transaction user
        else:
            raise InvalidStateError(f"cannot send {response.status} in state {self.state}")

    # Timer G: retransmit the non-2xx final, doubling up to T2.
    def _timer_g_start(self) -> None:
        self._start("g", self._g_interval, self._timer_g_expired)

    def _timer_g_cancel(self) -> None:
        self._cancel("g")

    def _timer_g_expired(self) -> None:
        if self.state == TransactionState.COMPLETED and self.last_response is not None:
            self._transmit(self.last_response)
            self._g_interval = min(2 * self._g_interval, self._timers.t2)
            self._timer_g_start()

    # Timer H: give up waiting for the ACK.
    def _timer_h_start(self) -> None:
        self._start("h", self._timers.h, self._timer_h_expired)

    def _timer_h_cancel(self) -> None:
        self._cancel("h")

    def _timer_h_expired(self) -> None:
        logger.info("ist %s: no ACK for the final response", self.key[0])
        self._set_state(TransactionState.TERMINATED)

    # Timer I: absorb ACK retransmissions.
    def _timer_i_start(self) -> None:
        self._start("i", self._timers.i, self._timer_i_expired)

    def _timer_i_expired(self) -> None:
        self._set_state(TransactionState.TERMINATED)

    # Timer L: stay Accepted so retransmitted INVITEs are absorbed.
    def _timer_l_start(self) -> None:
        self._start("l", self._timers.l, self._timer_l_expired)

    def _timer_l_expired(self) -> None:
        self._set_state(TransactionState.TERMINATED)


class ServerNonInviteTransaction(_Transaction):
    """RFC 3261 §17.2.2."""

    kind = "nist"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.last_response: bytes | None = None
        self._set_state(TransactionState.TRYING)

    def receive_request(self, request: SipRequest) -> None:
        """Answer a retransmitted request with the last response (Trying absorbs it)."""
        if self.state in (TransactionState.PROCEEDING, TransactionState.COMPLETED):
            if self.last_response is not None:
                self._transmit(self.last_response)

    def send_response(self, response: SipResponse) -> None:
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            raise InvalidStateError(f"cannot send {response.status} in state {self.state}")
        self.last_response = bytes(response)
        self._transmit(self.last_response)
        if response.status < 200:
            self._set_state(TransactionState.PROCEEDING)
        else:
            self._set_state(TransactionState.COMPLETED)
            self._timer_j_start()

    # Timer J: absorb request retransmissions after the final response.
    def _timer_j_start(self) -> None:
        self._start("j", self._timers.j, self._timer_j_expired)

    def _timer_j_expired(self) -> None:
        self._set_state(TransactionState.TERMINATED)


# --- client side ------------------------------------------------------------------------------


def timeout_response(request: SipRequest, status: int = 408) -> SipResponse:
    """Return the response a client transaction reports on timeout or transport error."""
    headers = Headers()
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is not None:
            headers.add(name, value)
    response = SipResponse(status, None, headers)
    response.local = True  # type: ignore[attr-defined]
    return response


class _ClientTransaction(_Transaction):
    def __init__(self, request: SipRequest, addr: Addr, send: Send, timers: Timers,
                 on_terminated: Callable[[_Transaction], None] | None = None,
                 on_response: Callable[[SipResponse], None] | None = None) -> None:
        super().__init__(request, addr, send, timers, on_terminated)
        self._on_response = on_response
        self.final: asyncio.Future[SipResponse] = self._loop.create_future()
        self._data = bytes(request)

    def terminate(self) -> None:
        super().terminate()
        if not self.final.done():
            self.final.set_exception(ConnectionError("SIP endpoint closed"))

    def _deliver(self, response: SipResponse) -> None:
        if response.status >= 200 and not self.final.done():
            self.final.set_result(response)
        if self._on_response is not None:
            try:
                self._on_response(response)
            except Exception:
                logger.exception("%s: response handler failed", self.kind)


class ClientInviteTransaction(_ClientTransaction):
    """RFC 3261 §17.1.1 with RFC 6026's Accepted state."""

    kind = "ict"

    def start(self) -> None:
        self._a_interval = self._timers.a
        self._set_state(TransactionState.CALLING)
        self._transmit(self._data)
        self._timer_a_start()
        self._timer_b_start()

    def receive_response(self, response: SipResponse) -> None:
        state = self.state
        if state in (TransactionState.CALLING, TransactionState.PROCEEDING):
            self._timer_a_cancel()
            self._timer_b_cancel()
            if response.status < 200:
                self._set_state(TransactionState.PROCEEDING)
            elif response.status < 300:
                self._set_state(TransactionState.ACCEPTED)
                self._timer_m_start()
            else:
                self._ack = bytes(self._make_ack(response))
                self._transmit(self._ack)
                self._set_state(TransactionState.COMPLETED)
                self._timer_d_start()
            self._deliver(response)
        elif state == TransactionState.ACCEPTED and 200 <= response.status < 300:
            self._deliver(response)  # the dialog re-ACKs 2xx retransmissions
        elif state == TransactionState.COMPLETED and response.status >= 300:
            self._transmit(self._ack)

    def _make_ack(self, response: SipResponse) -> SipRequest:
        """Build the ACK for a non-2xx final, part of this transaction (RFC 3261 §17.1.1.3)."""
        headers = Headers()
        headers.add("Via", self.request.headers.get_all("Via")[0])
        for value in self.request.headers.get_all("Route"):
            headers.add("Route", value)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.request.headers.get("From") or "")
        headers.add("To", response.headers.get("To") or "")
        headers.add("Call-ID", self.request.call_id)
        headers.add("CSeq", f"{self.request.cseq[0]} ACK")
        return SipRequest("ACK", self.request.uri, headers)

    # Timer A: retransmit the INVITE, doubling.
    def _timer_a_start(self) -> None:
        self._start("a", self._a_interval, self._timer_a_expired)

    def _timer_a_cancel(self) -> None:
        self._cancel("a")

    def _timer_a_expired(self) -> None:
        if self.state == TransactionState.CALLING:
            self._transmit(self._data)
            self._a_interval *= 2
            self._timer_a_start()

    # Timer B: no response at all.
    def _timer_b_start(self) -> None:
        self._start("b", self._timers.b, self._timer_b_expired)

    def _timer_b_cancel(self) -> None:
        self._cancel("b")

    def _timer_b_expired(self) -> None:
        if self.state == TransactionState.CALLING:
            self._set_state(TransactionState.TERMINATED)
            self._deliver(timeout_response(self.request))

    # Timer D: absorb final-response retransmissions (and re-ACK them).
    def _timer_d_start(self) -> None:
        self._start("d", self._timers.d, self._timer_d_expired)

    def _timer_d_expired(self) -> None:
        self._set_state(TransactionState.TERMINATED)

    # Timer M: stay Accepted so 2xx retransmissions reach the dialog.
    def _timer_m_start(self) -> None:
        self._start("m", self._timers.m, self._timer_m_expired)

    def _timer_m_expired(self) -> None:
        self._set_state(TransactionState.TERMINATED)


class ClientNonInviteTransaction(_ClientTransaction):
    """RFC 3261 §17.1.2."""

    kind = "nict"

    def start(self) -> None:
        self._e_interval = self._timers.e
        self._set_state(TransactionState.TRYING)
        self._transmit(self._data)
        self._timer_e_start()
        self._timer_f_start()

    def receive_response(self, response: SipResponse) -> None:
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return  # Completed absorbs retransmitted finals
        if response.status < 200:
            self._set_state(TransactionState.PROCEEDING)
        else:
            self._timer_e_cancel()
            self._timer_f_cancel()
            self._set_state(TransactionState.COMPLETED)
            self._timer_k_start()
        self._deliver(response)

    # Timer E: retransmit, doubling up to T2 (at T2 once a provisional came).
    def _timer_e_start(self) -> None:
        self._start("e", self._e_interval, self._timer_e_expired)

    def _timer_e_cancel(self) -> None:
        self._cancel("e")

    def _timer_e_expired(self) -> None:
        if self.state in (TransactionState.TRYING, TransactionState.PROCEEDING):
            self._transmit(self._data)
            if self.state == TransactionState.PROCEEDING:
                self._e_interval = self._timers.t2
            else:
                self._e_interval = min(2 * self._e_interval, self._timers.t2)
            self._timer_e_start()

    # Timer F: give up.
    def _timer_f_start(self) -> None:
        self._start("f", self._timers.f, self._timer_f_expired)

    def _timer_f_cancel(self) -> None:
        self._cancel("f")

    def _timer_f_expired(self) -> None:
        self._set_state(TransactionState.TERMINATED)
        self._deliver(timeout_response(self.request))

    # Timer K: absorb retransmitted finals.
    def _timer_k_start(self) -> None:
        self._start("k", self._timers.k, self._timer_k_expired)

    def _timer_k_expired(self) -> None:
        self._set_state(TransactionState.TERMINATED)
