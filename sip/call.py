"""The INVITE before the dialog: ``ServerInvite`` (incoming) and ``OutgoingCall`` (outgoing).

A call object owns the INVITE transaction until there is an answer; the
``Dialog`` it hands over owns everything after (livekit-sip: the dialog is
separate from the call).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .dialog import Dialog, DialogState
from .digest import Credentials
from .errors import CallFailed, InvalidStateError
from .message import Headers, SipRequest, SipResponse, make_response, new_branch
from .transaction import ClientInviteTransaction, ServerInviteTransaction
from .transport import Addr
from .uri import Address

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

logger = logging.getLogger(__name__)


class IncomingCallState(enum.Enum):
    PROCEEDING = "proceeding"
    ANSWERED = "answered"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class InviteHandler(Protocol):
    """What the owner of a pending incoming INVITE hears from the stack."""

    def on_cancel(self, reason: str) -> None:
        """The INVITE was cancelled (487 sent); `reason` is the CANCEL's Reason header, or ""."""


class ServerInvite:
    """An INVITE we received outside any dialog; answer, reject or watch it get cancelled."""

    def __init__(self, endpoint: SipEndpoint, request: SipRequest,
                 tx: ServerInviteTransaction, to_tag: str) -> None:
        self._endpoint = endpoint
        self._tx = tx
        self.request = request
        self.to_tag = to_tag
        self.state = IncomingCallState.PROCEEDING
        self.dialog: Dialog | None = None
        self.cancelled = asyncio.Event()
        self.cancel_reason = ""  # the CANCEL's Reason header (RFC 3326), once cancelled
        self.on_state_change: Callable[[IncomingCallState], Any] | None = None
        self.handler: InviteHandler | None = None

    def __repr__(self) -> str:
        return f"<ServerInvite {self.request.uri} {self.state.value}>"

    @property
    def offer(self) -> str | None:
        """Return the SDP offer in the INVITE, if any."""
        return self.request.sdp

    def _set_state(self, state: IncomingCallState) -> None:
        logger.debug("incoming %s - %s -> %s", self.request.call_id, self.state.value, state.value)
        self.state = state
        if state == IncomingCallState.CANCELLED:
            self.cancelled.set()
        if self.on_state_change is not None:
            self._endpoint._invoke(self.on_state_change, state)

    def _check_proceeding(self, action: str) -> None:
        if self.state != IncomingCallState.PROCEEDING:
            raise InvalidStateError(f"cannot {action} a call that is {self.state.value}")

    def _response(self, status: int, reason: str | None = None, sdp: str | None = None,
                  headers: dict[str, str] | None = None) -> SipResponse:
        body = sdp.encode() if sdp else b""
        response = make_response(self.request, status, reason, to_tag=self.to_tag, body=body,
                                 content_type="application/sdp" if sdp else None)
        for name, value in (headers or {}).items():
            response.headers.add(name, value)
        self._endpoint._decorate(response)
        return response

    def send_provisional(self, status: int = 180, sdp: str | None = None,
                         headers: dict[str, str] | None = None) -> None:
        """Send 180 Ringing, or 183 with early media SDP."""
        self._check_proceeding("ring")
        if not 101 <= status <= 199:
            raise ValueError(f"not a provisional status: {status}")
        self._tx.send_response(self._response(status, sdp=sdp, headers=headers))

    def answer(self, sdp: str | None, headers: dict[str, str] | None = None) -> Dialog:
        """Send 200 OK with the answer (or an offer, if the INVITE had none); return the dialog.

        The dialog resends the 200 until the ACK comes; ``dialog.confirmed`` is set then.
        """
        self._check_proceeding("answer")
        request = self.request
        contact = request.contact
        dialog = Dialog(
            self._endpoint, call_id=request.call_id, local=request.to.with_tag(self.to_tag),
            remote=request.from_,
            remote_target=contact.uri if contact else request.from_.uri,
            route_set=[Address.parse(v) for v in request.headers.get_all("Record-Route")],
            local_seq=random.randint(1, 10_000), remote_seq=request.cseq[0],  # noqa: S311
            is_uas=True, state=DialogState.ANSWERED,
        )
        dialog.local_sdp = sdp
        dialog.remote_sdp = self.offer
        self.dialog = dialog
        self._endpoint._register_dialog(dialog)  # before sending: the ACK can be quick
        dialog._send_ok(self._tx, self._response(200, sdp=sdp, headers=headers))
        self._set_state(IncomingCallState.ANSWERED)
        return dialog

    def reject(self, status: int = 486, reason: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        """Send a final non-2xx response (the transaction retransmits it until the ACK)."""
        self._check_proceeding("reject")
        if not 300 <= status <= 699:
            raise ValueError(f"not a rejection status: {status}")
        self._tx.send_response(self._response(status, reason, headers=headers))
        self._set_state(IncomingCallState.REJECTED)

    def _cancel(self, reason: str = "") -> None:
        """Handle a CANCEL: 487 the INVITE unless a final response already went out."""
        if self.state != IncomingCallState.PROCEEDING:
            return  # the final response won the race; the CANCEL only gets its 200
        self.cancel_reason = reason
        self._tx.send_response(self._response(487))
        self._set_state(IncomingCallState.CANCELLED)
        if self.handler is not None:
            self._endpoint._invoke(self.handler.on_cancel, reason)



class OutgoingCallState(enum.Enum):
    CALLING = "calling"
    PROCEEDING = "proceeding"
    ANSWERED = "answered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutgoingCall:
    """An INVITE we sent; ``await wait_answer()`` for the dialog, or ``cancel()``."""

    def __init__(self, endpoint: SipEndpoint, request: SipRequest, addr: Addr,
                 credentials: Credentials | None, sdp: str | None) -> None:
        self._endpoint = endpoint
        self.request = request
        self._addr = addr
        self.credentials = credentials
        self.sdp = sdp
        self.state = OutgoingCallState.CALLING
        self.dialog: Dialog | None = None
        self.response: SipResponse | None = None
        self.on_provisional: Callable[[SipResponse], Any] | None = None
        self.on_state_change: Callable[[OutgoingCallState], Any] | None = None
        self._early: dict[str, Dialog] = {}
        self._answered: asyncio.Future[Dialog] = asyncio.get_running_loop().create_future()
        self._answered.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._authenticated = False
        self._cancel_requested = False
        self._cancel_sent = False
        self._tx: ClientInviteTransaction | None = None

    def __repr__(self) -> str:
        return f"<OutgoingCall {self.request.uri} {self.state.value}>"

    def _set_state(self, state: OutgoingCallState) -> None:
        if state == self.state:
            return
        logger.debug("outgoing %s - %s -> %s", self.request.call_id, self.state.value, state.value)
        self.state = state
        if self.on_state_change is not None:
            self._endpoint._invoke(self.on_state_change, state)

    def _start(self) -> None:
        self._tx = self._endpoint._start_client_transaction(
            self.request, self._addr, self._on_response)

    async def wait_answer(self) -> Dialog:
        """Return the confirmed dialog; raise CallFailed if the call was not answered."""
        return await asyncio.shield(self._answered)

    def cancel(self) -> None:
        """Give up on the call: CANCEL once a provisional came (RFC 3261 §9.1); idempotent."""
        if self.state not in (OutgoingCallState.CALLING, OutgoingCallState.PROCEEDING):
            return
        self._cancel_requested = True
        if self.state == OutgoingCallState.PROCEEDING:
            self._send_cancel()

    def _send_cancel(self) -> None:
        if self._cancel_sent:
            return
        self._cancel_sent = True
        invite = self.request
        headers = Headers()
        headers.add("Via", invite.headers.get_all("Via")[0])  # same branch as the INVITE
        for value in invite.headers.get_all("Route"):
            headers.add("Route", value)
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            headers.add(name, invite.headers.get(name) or "")
        headers.add("CSeq", f"{invite.cseq[0]} CANCEL")
        cancel = SipRequest("CANCEL", invite.uri, headers)
        self._endpoint._start_client_transaction(cancel, self._addr, None)

    def _on_response(self, response: SipResponse) -> None:
        status = response.status
        tag = response.to.tag
        if status < 200:
            if status > 100 and tag and tag not in self._early and self.dialog is None:
                self._early[tag] = self._make_dialog(response, tag)
            if self.state == OutgoingCallState.CALLING:
                self._set_state(OutgoingCallState.PROCEEDING)
            if self.on_provisional is not None and status > 100:
                self._endpoint._invoke(self.on_provisional, response)
            if self._cancel_requested:
                self._send_cancel()
        elif status < 300:
            self._on_2xx(response, tag or "")
        else:
            self._on_failure(response)

    def _on_2xx(self, response: SipResponse, tag: str) -> None:
        if self.dialog is not None:
            if tag == self.dialog.remote_tag:
                self.dialog.receive_2xx(response)  # retransmitted 2xx: ACK again
                return
            # A second fork answered (RFC 3261 §13.2.2.4): ACK it, then hang it up.
            extra = self._make_dialog(response, tag)
            extra.receive_2xx(response)
            self._endpoint._spawn(extra.bye(reason="forked answer"))
            return
        dialog = self._early.pop(tag, None) or self._make_dialog(response, tag)
        dialog.route_set = [Address.parse(v) for v in
                            reversed(response.headers.get_all("Record-Route"))]
        dialog.local_sdp = self.sdp
        dialog.remote_sdp = response.sdp
        self.dialog = dialog
        self.response = response
        self._endpoint._register_dialog(dialog)
        dialog.receive_2xx(response)
        for early in self._early.values():
            early._terminate("another fork answered")
        self._early.clear()
        if self._cancel_requested:
            # The 200 crossed our CANCEL: the call exists, so end it with BYE.
            self._endpoint._spawn(dialog.bye(reason="cancelled"))
            self._set_state(OutgoingCallState.CANCELLED)
            self._answered.set_exception(CallFailed(487, "Cancelled after answer", response))
            return
        self._set_state(OutgoingCallState.ANSWERED)
        self._answered.set_result(dialog)

    def _on_failure(self, response: SipResponse) -> None:
        if self.state not in (OutgoingCallState.CALLING, OutgoingCallState.PROCEEDING):
            return
        if response.status in (401, 407) and not self._authenticated and not self._cancel_requested:
            auth = self._endpoint._authorization(self.request, response, self.credentials)
            if auth is not None:
                self._authenticated = True
                self._resend_with(auth)
                return
        self.response = response
        for early in self._early.values():
            early._terminate(f"call failed with {response.status}")
        self._early.clear()
        cancelled = self._cancel_requested and response.status == 487
        self._set_state(OutgoingCallState.CANCELLED if cancelled else OutgoingCallState.FAILED)
        self._answered.set_exception(CallFailed(response.status, response.reason, response))

    def _resend_with(self, auth: tuple[str, str]) -> None:
        """Send the INVITE again with credentials: same Call-ID and tag, CSeq + 1, new branch."""
        old = self.request
        headers = Headers()
        for name, value in old.headers:
            if name == "Via":
                value = self._endpoint._via(new_branch())
            elif name == "CSeq":
                value = f"{old.cseq[0] + 1} INVITE"
            headers.add(name, value)
        headers.add(*auth)
        self.request = SipRequest("INVITE", old.uri, headers, old.body)
        self._cancel_sent = False
        self._start()

    def _make_dialog(self, response: SipResponse, tag: str) -> Dialog:
        contact = response.contact
        return Dialog(
            self._endpoint, call_id=self.request.call_id, local=self.request.from_,
            remote=response.to, remote_target=contact.uri if contact else response.to.uri,
            route_set=[Address.parse(v)
                       for v in reversed(response.headers.get_all("Record-Route"))],
            local_seq=self.request.cseq[0], remote_seq=None, is_uas=False,
            state=DialogState.EARLY, credentials=self.credentials,
        )
