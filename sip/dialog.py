"""A SIP dialog (RFC 3261 §12-§15): tags, CSeq, route set, target, offers and teardown.

The dialog is the transaction user for everything after the answer: it
resends its 2xx until the ACK comes (RFC 3261 §13.3.1.4, RFC 6026), ACKs the
peer's 2xx (and every retransmission of it), answers re-INVITE/UPDATE offers
and sends or receives BYE. It knows nothing about media: the application
answers offers through ``on_reinvite``.

Offers are answered in their own task, so a re-INVITE that Asterisk sends a
few milliseconds after our ACK is answered even while the application is
still busy with the answer (lab notes: direct media).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .digest import Credentials
from .errors import InvalidStateError, SipStatusError
from .message import Headers, SipRequest, SipResponse, make_response, new_branch
from .sdp import answer_sdp
from .transaction import ServerInviteTransaction, ServerNonInviteTransaction
from .transport import Addr
from .uri import Address, SipUri

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

logger = logging.getLogger(__name__)

OfferHandler = Callable[[SipRequest], "str | Awaitable[str | None] | None"]
RequestHandler = Callable[[SipRequest], Any]


class DialogHandler(Protocol):
    """What a dialog's owner answers and hears; bind one with ``Dialog.set_handler``."""

    def on_reinvite(self, request: SipRequest) -> Awaitable[str | None]:
        """Answer a re-INVITE or UPDATE offer with our SDP; raise SipStatusError to refuse it."""

    def on_info(self, request: SipRequest) -> None:
        """An INFO in the dialog (already answered 200)."""

    def on_terminated(self, reason: str) -> None:
        """The dialog ended: "remote bye", our own BYE, or a failure such as no ACK."""


class DialogState(enum.Enum):
    EARLY = "early"  # UAC: after a 1xx with a To-tag
    ANSWERED = "answered"  # UAS: 2xx sent, no ACK yet
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class _OkRetransmitter:
    """Resend a 2xx to INVITE until its ACK: T1 doubling to T2, for 64*T1 (RFC 3261 §13.3.1.4)."""

    def __init__(self, dialog: Dialog, tx: ServerInviteTransaction, response: SipResponse,
                 on_timeout: Callable[[], None]) -> None:
        self._dialog = dialog
        self._tx = tx
        self._data = bytes(response)
        self._on_timeout = on_timeout
        timers = dialog._endpoint.timers
        self._interval = timers.t1
        self._t2 = timers.t2
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + timers.ack_wait
        self._handle: asyncio.TimerHandle | None = None
        self._timer_g_start()

    def _timer_g_start(self) -> None:
        self._handle = self._loop.call_later(self._interval, self._timer_g_expired)

    def _timer_g_cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _timer_g_expired(self) -> None:
        self._handle = None
        if self._loop.time() >= self._deadline:
            self._on_timeout()
            return
        self._dialog._endpoint._send(self._data, self._tx.addr)
        self._interval = min(2 * self._interval, self._t2)
        self._timer_g_start()

    def stop(self) -> None:
        self._timer_g_cancel()


class Dialog:
    """One dialog; create through ``ServerInvite.answer()`` or ``OutgoingCall``."""

    def __init__(self, endpoint: SipEndpoint, *, call_id: str, local: Address, remote: Address,
                 remote_target: SipUri, route_set: list[Address], local_seq: int,
                 remote_seq: int | None, is_uas: bool, state: DialogState,
                 credentials: Credentials | None = None) -> None:
        self._endpoint = endpoint
        self.call_id = call_id
        self.local = local  # our From (UAC) / To (UAS), with our tag
        self.remote = remote
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.is_uas = is_uas
        self.credentials = credentials
        self.state = state
        self.reason: str | None = None
        self.local_sdp: str | None = None
        self.remote_sdp: str | None = None

        self.on_reinvite: OfferHandler | None = None
        self.on_bye: RequestHandler | None = None
        self.on_info: RequestHandler | None = None
        self.on_state_change: Callable[[DialogState], Any] | None = None
        self.confirmed = asyncio.Event()
        self.terminated = asyncio.Event()

        self._pending_ok: dict[int, _OkRetransmitter] = {}
        self._acks: dict[int, bytes] = {}  # our ACK per INVITE CSeq, resent on 2xx retransmits
        self._uac_offer_pending = False
        self._uas_offer_pending = False
        if state == DialogState.CONFIRMED:
            self.confirmed.set()

    def __repr__(self) -> str:
        return f"<Dialog {self.call_id} {self.state.value}>"

    @property
    def local_tag(self) -> str:
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote.tag or ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    def set_handler(self, handler: DialogHandler) -> None:
        """Send this dialog's offers, INFOs and its end to `handler`."""
        self.on_reinvite = handler.on_reinvite
        self.on_info = handler.on_info
        self.on_state_change = lambda state: (
            handler.on_terminated(self.reason or "") if state == DialogState.TERMINATED else None
        )

    def _set_state(self, state: DialogState) -> None:
        if state == self.state:
            return
        logger.debug("dialog %s - %s -> %s", self.call_id, self.state.value, state.value)
        self.state = state
        if state in (DialogState.CONFIRMED, DialogState.TERMINATED):
            self.confirmed.set()
        if state == DialogState.TERMINATED:
            self.terminated.set()
        if self.on_state_change is not None:
            self._endpoint._invoke(self.on_state_change, state)

    def _terminate(self, reason: str) -> None:
        if self.state == DialogState.TERMINATED:
            return
        self.reason = reason
        for retransmitter in self._pending_ok.values():
            retransmitter.stop()
        self._pending_ok.clear()
        self._endpoint._forget_dialog(self)
        self._set_state(DialogState.TERMINATED)

    async def wait_terminated(self) -> str | None:
        """Wait until the dialog ends; return the reason."""
        await self.terminated.wait()
        return self.reason

    # --- UAS: our 2xx and the peer's ACK ------------------------------------------------------

    def _send_ok(self, tx: ServerInviteTransaction, response: SipResponse) -> None:
        """Send a 2xx to an INVITE and keep resending it until the ACK."""
        cseq = response.cseq[0]
        tx.send_response(response)
        self._pending_ok[cseq] = _OkRetransmitter(
            self, tx, response, lambda: self._ack_timeout(cseq))

    def _ack_timeout(self, cseq: int) -> None:
        self._pending_ok.pop(cseq, None)
        logger.warning("dialog %s: no ACK for the 2xx to CSeq %d; ending it", self.call_id, cseq)
        self._endpoint._spawn(self.bye(reason="ack timeout"))

    def receive_ack(self, request: SipRequest) -> None:
        cseq = request.cseq[0]
        retransmitter = self._pending_ok.pop(cseq, None)
        if retransmitter is None:
            return  # a retransmitted or stray ACK
        retransmitter.stop()
        if request.sdp:
            self.remote_sdp = request.sdp  # the answer to an offer we made in the 2xx
        if self.state == DialogState.ANSWERED:
            self._set_state(DialogState.CONFIRMED)

    # --- UAC: the peer's 2xx and our ACK ------------------------------------------------------

    def receive_2xx(self, response: SipResponse) -> None:
        """ACK a 2xx to one of our INVITEs; a retransmitted 2xx gets the same ACK again."""
        cseq = response.cseq[0]
        data = self._acks.get(cseq)
        if data is None:
            if self.state == DialogState.TERMINATED:
                return
            self._refresh_target(response)
            request, _ = self._build_request("ACK", cseq=cseq)
            data = bytes(request)
            self._acks = {cseq: data}  # only the latest INVITE's 2xx can still be retransmitted
            if self.state == DialogState.EARLY:
                self._set_state(DialogState.CONFIRMED)
        self._endpoint._send(data, self._destination())

    # --- requests from the peer ---------------------------------------------------------------

    def receive_request(self, request: SipRequest,
                        tx: ServerInviteTransaction | ServerNonInviteTransaction) -> None:
        cseq = request.cseq[0]
        if self.remote_seq is not None and cseq <= self.remote_seq:
            # RFC 3261 §12.2.2: out of order. (Retransmissions never get here: their
            # transaction absorbs them.)
            self._respond(tx, request, 500)
            return
        self.remote_seq = cseq
        method = request.method
        if self.state == DialogState.TERMINATED:
            self._respond(tx, request, 481)
        elif method == "BYE":
            self._respond(tx, request, 200)
            self._terminate("remote bye")
            if self.on_bye is not None:
                self._endpoint._invoke(self.on_bye, request)
        elif method in ("INVITE", "UPDATE"):
            if self._uac_offer_pending:
                self._respond(tx, request, 491)  # RFC 3261 §14.2, RFC 3311 §5.2: glare
            elif self._uas_offer_pending:
                self._respond(tx, request, 500,
                              headers={"Retry-After": str(random.randint(1, 10))})  # noqa: S311
            else:
                self._uas_offer_pending = True
                self._endpoint._spawn(self._answer_offer(request, tx))
        elif method == "INFO":
            self._respond(tx, request, 200)
            if self.on_info is not None:
                self._endpoint._invoke(self.on_info, request)
        elif method == "OPTIONS":
            self._endpoint._answer_options(request, tx, to_tag=None)
        else:
            self._respond(tx, request, 501)

    async def _answer_offer(self, request: SipRequest,
                            tx: ServerInviteTransaction | ServerNonInviteTransaction) -> None:
        try:
            offer = request.sdp
            try:
                if self.on_reinvite is not None:
                    result = self.on_reinvite(request)
                    answer = await result if inspect.isawaitable(result) else result
                else:
                    answer = self.default_answer(offer)
            except SipStatusError as exc:
                self._respond(tx, request, exc.status, exc.reason)
                return
            except Exception:
                logger.exception("dialog %s: on_reinvite failed", self.call_id)
                self._respond(tx, request, 500)
                return
            if self.state == DialogState.TERMINATED:
                self._respond(tx, request, 487)
                return
            answer = answer if answer is not None else self.local_sdp
            self._refresh_target(request)
            body = answer.encode() if answer else b""
            response = make_response(request, 200, to_tag=self.local_tag, body=body,
                                     content_type="application/sdp" if body else None)
            self._endpoint._decorate(response)
            if answer:
                self.local_sdp = answer
            if offer:
                self.remote_sdp = offer
            if isinstance(tx, ServerInviteTransaction):
                self._send_ok(tx, response)
            else:
                tx.send_response(response)
        finally:
            self._uas_offer_pending = False

    def default_answer(self, offer: str | None) -> str | None:
        """Answer an offer with our current SDP, its direction mirrored (RFC 3264 §6.1)."""
        if self.local_sdp is None:
            return None
        return answer_sdp(self.local_sdp, offer)

    def _respond(self, tx: ServerInviteTransaction | ServerNonInviteTransaction,
                 request: SipRequest, status: int, reason: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        response = make_response(request, status, reason, to_tag=self.local_tag)
        for name, value in (headers or {}).items():
            response.headers.add(name, value)
        self._endpoint._decorate(response)
        tx.send_response(response)

    def _refresh_target(self, message: SipRequest | SipResponse) -> None:
        """Take the remote target from a target-refresh request or its 2xx (RFC 3261 §12.2)."""
        contact = message.contact
        if contact is not None:
            self.remote_target = contact.uri

    # --- requests we send ---------------------------------------------------------------------

    def _destination(self) -> Addr:
        if self.route_set:
            return self.route_set[0].uri.address
        return self.remote_target.address

    def _build_request(self, method: str, *, cseq: int | None = None, body: bytes = b"",
                       content_type: str | None = None) -> tuple[SipRequest, Addr]:
        """Build an in-dialog request (RFC 3261 §12.2.1.1)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        uri = str(self.remote_target)
        routes = [str(r) for r in self.route_set]
        if self.route_set and "lr" not in self.route_set[0].uri.params:
            # Strict router: it goes in the Request-URI, the target at the end of Route.
            uri = str(self.route_set[0].uri)
            routes = [str(r) for r in self.route_set[1:]] + [f"<{self.remote_target}>"]
        headers = Headers()
        headers.add("Via", self._endpoint._via(new_branch()))
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local))
        headers.add("To", str(self.remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if method in ("INVITE", "UPDATE"):
            headers.add("Contact", str(self._endpoint.contact))
        if method != "ACK":
            self._endpoint._decorate_request(headers)
        if content_type:
            headers.add("Content-Type", content_type)
        return SipRequest(method, uri, headers, body), self._destination()

    async def _request(self, method: str, body: bytes = b"",
                       content_type: str | None = None) -> SipResponse:
        """Send an in-dialog request and wait for its final response; answer one challenge."""
        auth: tuple[str, str] | None = None
        for _ in range(2):
            request, addr = self._build_request(method, body=body, content_type=content_type)
            if auth is not None:
                request.headers.add(*auth)
            on_response = self._on_invite_response if method == "INVITE" else None
            tx = self._endpoint._start_client_transaction(request, addr, on_response)
            response = await tx.final
            if response.status in (401, 407) and auth is None:
                creds = self.credentials or self._endpoint.credentials
                auth = self._endpoint._authorization(request, response, creds)
                if auth is not None:
                    continue
            break
        if response.status in (408, 481) and method != "BYE":
            self._terminate(f"{method} got {response.status}")  # RFC 3261 §12.2.1.2
        return response

    def _on_invite_response(self, response: SipResponse) -> None:
        if 200 <= response.status < 300:
            self.receive_2xx(response)

    async def bye(self, reason: str = "local bye") -> SipResponse | None:
        """End the dialog with BYE (retransmitted by its transaction); no-op once ended."""
        if self.state == DialogState.TERMINATED:
            return None
        if self.state == DialogState.EARLY:
            raise InvalidStateError("an early dialog is ended with CANCEL, not BYE")
        self._terminate(reason)  # RFC 3261 §15.1.1: the session ends when BYE is sent
        return await self._request("BYE")

    async def reinvite(self, sdp: str) -> str | None:
        """Send a re-INVITE with an offer; return the answer SDP or raise SipStatusError."""
        return await self._offer("INVITE", sdp)

    async def update(self, sdp: str) -> str | None:
        """Send an UPDATE with an offer (RFC 3311); return the answer SDP."""
        return await self._offer("UPDATE", sdp)

    async def _offer(self, method: str, sdp: str) -> str | None:
        if self.state not in (DialogState.CONFIRMED, DialogState.ANSWERED):
            raise InvalidStateError(f"cannot send {method} in state {self.state.value}")
        if self._uac_offer_pending or self._uas_offer_pending:
            raise InvalidStateError("an offer is already pending on this dialog")
        self._uac_offer_pending = True
        try:
            response = await self._request(method, sdp.encode(), "application/sdp")
        finally:
            self._uac_offer_pending = False
        if not 200 <= response.status < 300:
            raise SipStatusError(response.status, response.reason, response)
        self._refresh_target(response)
        self.local_sdp = sdp
        if response.sdp:
            self.remote_sdp = response.sdp
        return response.sdp

    async def close(self) -> None:
        """Hang up if still up; idempotent."""
        if self.state in (DialogState.CONFIRMED, DialogState.ANSWERED):
            await self.bye()
        else:
            self._terminate("closed")
