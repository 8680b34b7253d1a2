"""``SipEndpoint``: the UDP user agent core that routes messages to transactions and dialogs.

It owns the one socket, the transaction tables and the dialog table; it
answers what needs no application (OPTIONS, CANCEL, 481, 501, 400) and hands
new INVITEs to ``on_invite``. Responses go where the top Via says (RFC 3261
§18.2.2 with RFC 3581 rport); requests always leave from the listening socket.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from .call import IncomingCallState, OutgoingCall, ServerInvite
from .dialog import Dialog
from .digest import Challenge, Credentials, authorization
from .message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse,
)
from .timers import DEFAULT_TIMERS, Timers
from .transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    transaction_key,
)
from .transport import Addr, UdpTransport
from .uri import Address, SipUri

logger = logging.getLogger(__name__)

ALLOWED_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO")
IN_DIALOG_METHODS = ("BYE", "UPDATE", "INFO")

ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction
ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction


def response_address(via: Via, source: Addr) -> Addr:
    """Return where a response to a request that came from ``source`` goes (UDP).

    RFC 3581: with rport, back to the exact source; else RFC 3261 §18.2.2:
    the source IP (the "received" address) at the Via port.
    """
    if "rport" in via.params:
        return source
    return source[0], via.port or 5060


class SipEndpoint:
    """A SIP user agent on one UDP socket.

    Set ``on_invite`` to receive ``ServerInvite`` objects; place calls with
    ``invite()``. Callbacks may be plain functions or coroutines.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 5060, *,
                 public_host: str | None = None, user: str = "ccbridge",
                 user_agent: str = "ccbridge", timers: Timers = DEFAULT_TIMERS,
                 credentials: Credentials | None = None) -> None:
        self.host = host
        self.port = port
        self.public_host = public_host or host
        self.user = user
        self.user_agent = user_agent
        self.timers = timers
        self.credentials = credentials
        self.on_invite: Callable[[ServerInvite], Any] | None = None
        self._transport: UdpTransport | None = None
        self._server_tx: dict[tuple[str, ...], ServerTransaction] = {}
        self._client_tx: dict[tuple[str, ...], ClientTransaction] = {}
        self._incoming: dict[tuple[str, ...], ServerInvite] = {}
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<SipEndpoint {self.host}:{self.port} dialogs={len(self._dialogs)}>"

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the UDP socket (port 0 picks a free one; ``port`` is updated)."""
        self._transport = await UdpTransport.listen(self.host, self.port, self._on_datagram)
        assert self._transport.local_address is not None
        self.port = self._transport.local_address[1]

    async def close(self) -> None:
        """Stop timers and tasks and close the socket; idempotent. Hang up dialogs first."""
        if self._closed:
            return
        self._closed = True
        for tx in [*self._server_tx.values(), *self._client_tx.values()]:
            tx.terminate()
        for dialog in list(self._dialogs.values()):
            dialog._terminate("endpoint closed")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()

    async def __aenter__(self) -> SipEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def dialogs(self) -> list[Dialog]:
        return list(self._dialogs.values())

    @property
    def contact(self) -> Address:
        return Address(SipUri(self.public_host, self.user, self.port))

    # --- outgoing -----------------------------------------------------------------------------

    def invite(self, uri: str, sdp: str | None, *, from_uri: str | None = None,
               to_uri: str | None = None, display_name: str | None = None,
               headers: dict[str, str] | None = None, credentials: Credentials | None = None,
               destination: Addr | None = None) -> OutgoingCall:
        """Send an INVITE; return the call (``await call.wait_answer()`` for its dialog)."""
        target = SipUri.parse(uri)
        local = Address(SipUri.parse(from_uri) if from_uri else self.contact.uri, display_name,
                        {"tag": new_tag()})
        request = self._new_request("INVITE", target, local,
                                    Address(SipUri.parse(to_uri or uri)), headers)
        request.headers.add("Contact", str(self.contact))
        if sdp:
            request.headers.add("Content-Type", "application/sdp")
            request.body = sdp.encode()
        call = OutgoingCall(self, request, destination or target.address,
                            credentials or self.credentials, sdp)
        call._start()
        return call

    async def options(self, uri: str, destination: Addr | None = None) -> SipResponse:
        """Send OPTIONS out of dialog and return the final response (408 on timeout)."""
        target = SipUri.parse(uri)
        local = Address(self.contact.uri, None, {"tag": new_tag()})
        request = self._new_request("OPTIONS", target, local, Address(target), None)
        tx = self._start_client_transaction(request, destination or target.address, None)
        return await tx.final

    def _new_request(self, method: str, target: SipUri, local: Address, remote: Address,
                     extra: dict[str, str] | None) -> SipRequest:
        headers = Headers()
        headers.add("Via", self._via(new_branch()))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(local))
        headers.add("To", str(remote))
        headers.add("Call-ID", new_call_id(self.public_host))
        headers.add("CSeq", f"1 {method}")
        self._decorate_request(headers)
        for name, value in (extra or {}).items():
            headers.add(name, value)
        return SipRequest(method, str(target), headers)

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {self.public_host}:{self.port};rport;branch={branch}"

    def _decorate_request(self, headers: Headers) -> None:
        headers.add("Allow", ", ".join(ALLOWED_METHODS))
        headers.add("User-Agent", self.user_agent)

    def _decorate(self, response: SipResponse) -> None:
        """Add our Contact (dialog-creating and target-refresh answers), Allow and Server."""
        method = response.cseq[1]
        if method in ("INVITE", "UPDATE") and 101 < response.status < 300:
            response.headers.add("Contact", str(self.contact))
        if response.status // 100 == 2 or response.status == 405:
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        response.headers.add("Server", self.user_agent)

    def _start_client_transaction(self, request: SipRequest, addr: Addr,
                                  on_response: Callable[[SipResponse], None] | None
                                  ) -> ClientTransaction:
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        tx = cls(request, addr, self._send, self.timers, self._forget_client_tx, on_response)
        self._client_tx[tx.key] = tx
        tx.start()
        return tx

    def _authorization(self, request: SipRequest, response: SipResponse,
                       credentials: Credentials | None) -> tuple[str, str] | None:
        """Return the header answering a 401/407 challenge, or None if we cannot."""
        if credentials is None:
            return None
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        for value in response.headers.get_lines(header):
            try:
                challenge = Challenge.parse(value)
            except SipParseError:
                continue
            if credentials.realm not in (None, challenge.realm):
                continue
            name = "Authorization" if response.status == 401 else "Proxy-Authorization"
            return name, authorization(challenge, credentials, request.method, request.uri)
        return None

    # --- plumbing for calls and dialogs -------------------------------------------------------

    def _send(self, data: bytes, addr: Addr) -> None:
        if self._transport is None:
            raise ConnectionError("SIP endpoint not started")
        self._transport.send(data, addr)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("SIP task failed", exc_info=task.exception())

    def _invoke(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call an application callback; run it as a task if it is a coroutine function."""
        try:
            result = callback(*args)
        except Exception:
            logger.exception("SIP callback %r failed", callback)
            return
        if inspect.isawaitable(result):
            self._spawn(_await(result))

    def _register_dialog(self, dialog: Dialog) -> None:
        self._dialogs[dialog.key] = dialog

    def _forget_dialog(self, dialog: Dialog) -> None:
        if self._dialogs.get(dialog.key) is dialog:
            del self._dialogs[dialog.key]

    def _forget_client_tx(self, tx: Any) -> None:
        if self._client_tx.get(tx.key) is tx:
            del self._client_tx[tx.key]

    def _forget_server_tx(self, tx: Any) -> None:
        if self._server_tx.get(tx.key) is tx:
            del self._server_tx[tx.key]
        self._incoming.pop(tx.key, None)

    # --- incoming -----------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: Addr) -> None:
        if self._closed:
            return
        try:
            message = parse(data)
        except SipParseError as exc:
            logger.info("dropping malformed datagram from %s:%s: %s", *addr, exc)
            return
        if isinstance(message, SipResponse):
            try:
                message.validate()
            except SipParseError as exc:
                logger.info("dropping malformed response from %s:%s: %s", *addr, exc)
                return
            self._handle_response(message)
            return
        try:
            message.validate()
            via = message.top_via
        except SipParseError as exc:
            self._reject_malformed(message, addr, exc)
            return
        self._stamp_via(message, via, addr)
        self._handle_request(message, response_address(via, addr))

    def _reject_malformed(self, request: SipRequest, addr: Addr, exc: SipParseError) -> None:
        """Answer 400 if the Via lets us route it; otherwise drop (RFC 3261 §8.2, §18.2.2)."""
        logger.info("bad %s from %s:%s: %s", request.method, *addr, exc)
        if request.method == "ACK":
            return
        try:
            via = request.top_via
        except SipParseError:
            return
        response = make_response(request, 400, f"Bad Request ({exc})"[:100], to_tag=new_tag())
        self._send(bytes(response), response_address(via, addr))

    @staticmethod
    def _stamp_via(request: SipRequest, via: Via, addr: Addr) -> None:
        """Add received/rport to the top Via so responses record the source (RFC 3581)."""
        changed = False
        if via.host != addr[0]:
            via.params["received"] = addr[0]
            changed = True
        if "rport" in via.params and via.params["rport"] is None:
            via.params["received"] = addr[0]
            via.params["rport"] = str(addr[1])
            changed = True
        if changed:
            vias = request.headers.get_all("Via")
            request.headers.remove("Via")
            headers = list(request.headers)
            request.headers = Headers([("Via", str(via)), *[("Via", v) for v in vias[1:]],
                                       *headers])

    def _handle_response(self, response: SipResponse) -> None:
        tx = self._client_tx.get(transaction_key(response))
        if tx is not None:
            tx.receive_response(response)
            return
        if response.cseq[1] == "INVITE" and 200 <= response.status < 300:
            # A 2xx retransmitted after the transaction ended: the dialog ACKs it again.
            key = (response.call_id, response.from_.tag or "", response.to.tag or "")
            dialog = self._dialogs.get(key)
            if dialog is not None:
                dialog.receive_2xx(response)
                return
        logger.debug("stray response %s", response)

    def _handle_request(self, request: SipRequest, addr: Addr) -> None:
        key = transaction_key(request)
        tx = self._server_tx.get(key)
        if tx is not None:
            tx.receive_request(request)  # retransmission, or the ACK for a non-2xx
            return
        method = request.method
        if method == "ACK":
            dialog = self._dialogs.get(self._dialog_key(request))
            if dialog is not None:
                dialog.receive_ack(request)
            return
        tx_cls = ServerInviteTransaction if method == "INVITE" else ServerNonInviteTransaction
        new_tx = tx_cls(request, addr, self._send, self.timers, self._forget_server_tx)
        self._server_tx[key] = new_tx
        if method == "INVITE":
            new_tx.send_response(make_response(request, 100))
        if method == "CANCEL":
            self._handle_cancel(request, new_tx)
        elif method not in ALLOWED_METHODS:
            self._respond(new_tx, request, 501)
        elif request.to.tag is not None:
            dialog = self._dialogs.get(self._dialog_key(request))
            if dialog is not None:
                dialog.receive_request(request, new_tx)
            else:
                self._respond(new_tx, request, 481)
        elif method == "INVITE":
            assert isinstance(new_tx, ServerInviteTransaction)
            self._handle_invite(request, new_tx)
        elif method == "OPTIONS":
            self._answer_options(request, new_tx, to_tag=new_tag())
        else:
            self._respond(new_tx, request, 481)  # BYE/UPDATE/INFO outside any dialog

    @staticmethod
    def _dialog_key(request: SipRequest) -> tuple[str, str, str]:
        return (request.call_id, request.to.tag or "", request.from_.tag or "")

    def _respond(self, tx: ServerTransaction, request: SipRequest, status: int) -> None:
        response = make_response(request, status, to_tag=request.to.tag or new_tag())
        self._decorate(response)
        tx.send_response(response)

    def _answer_options(self, request: SipRequest, tx: ServerTransaction,
                        to_tag: str | None) -> None:
        """Answer OPTIONS (Asterisk's qualify) with what we support (RFC 3261 §11.2)."""
        response = make_response(request, 200, to_tag=to_tag)
        response.headers.add("Accept", "application/sdp")
        response.headers.add("Supported", "")
        self._decorate(response)
        tx.send_response(response)

    def _handle_cancel(self, request: SipRequest, tx: ServerTransaction) -> None:
        """RFC 3261 §9.2: 200 the CANCEL, then 487 the INVITE if it is still pending."""
        via = request.top_via
        invite_key = (via.branch or "", via.sent_by, "INVITE")
        if not (via.branch or "").startswith("z9hG4bK"):
            invite_key = (*transaction_key(request)[:-1], "INVITE")
        call = self._incoming.get(invite_key)
        if call is None:
            self._respond(tx, request, 481)
            return
        self._respond(tx, request, 200)
        call._cancel(request.headers.get("Reason") or "")

    def _handle_invite(self, request: SipRequest, tx: ServerInviteTransaction) -> None:
        if request.contact is None:
            response = make_response(request, 400, "Missing Contact", to_tag=new_tag())
            tx.send_response(response)
            return
        call = ServerInvite(self, request, tx, new_tag())
        self._incoming[tx.key] = call
        if self.on_invite is None:
            call.reject(480)
            return
        try:
            result = self.on_invite(call)
        except Exception:
            logger.exception("on_invite failed")
            _reject_quietly(call, 500)
            return
        if inspect.isawaitable(result):
            self._spawn(_guard_invite(call, result))


async def _await(awaitable: Any) -> None:
    await awaitable


async def _guard_invite(call: ServerInvite, awaitable: Any) -> None:
    """Run an async on_invite; an exception rejects the call with 500 rather than leaving it."""
    try:
        await awaitable
    except Exception:
        logger.exception("on_invite failed")
        _reject_quietly(call, 500)


def _reject_quietly(call: ServerInvite, status: int) -> None:
    if call.state == IncomingCallState.PROCEEDING:
        call.reject(status)
