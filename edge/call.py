"""One bridged call: a SIP dialog joined to a ConnectyCube call, as one state machine. Django-free.

One coroutine owns the call (`BridgedCall.run`): it reads typed events (`edge.events`) from one
queue, whatever their source (the SIP stack, the agents' ConnectyCube calls, the media workers,
the agent app, the call's timers), and decides. Every event kind is handled or logged in every
state. `close(reason)` runs once: it answers or hangs up what is still up, releases the media
sessions and ends the CDR row.

Inbound (SIP → app): the INVITE's URI picks a route (a department mapping); its agents ring in
rounds (all at once, or one by one); each agent's call has its own media session on a worker,
because the SDK wants an offer in `call`. The first to accept wins and the others are told
"answered elsewhere". 180 goes out once the call is routed; 200 OK only once the winner's WebRTC
leg is connected, so no audio is clipped.

The database, the board and the ConnectyCube accounts reach the call through `edge.ports`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sip.call import IncomingCallState, ServerInvite
from sip.dialog import Dialog
from sip.errors import InvalidStateError, SipStatusError
from sip.message import SipRequest
from sip.sdp import sdp_direction

from . import events as ev
from .endings import EndReason, cancel_reason
from .legs import AgentLeg
from .ports import (
    Account,
    Accounts,
    BridgeState,
    CallRecords,
    Direction,
    Finish,
    Media,
    Route,
    SipFacts,
)
from .ringing import Ringing
from .talking import Talking

logger = logging.getLogger(__name__)


class BridgedCall(Ringing, Talking):
    """One bridged call: its state, its legs, its one loop (`run`) and its one `close`."""

    def __init__(
        self,
        invite: ServerInvite,
        *,
        records: CallRecords,
        accounts: Accounts,
        media: Media,
        ice_timeout: float = 20.0,
        direction: Direction = Direction.INBOUND,
    ) -> None:
        if direction is not Direction.INBOUND:
            raise ValueError(f"{direction.value} calls are not supported yet")
        self.direction = direction
        self.invite = invite
        self.request = invite.request
        self.records = records
        self.accounts = accounts
        self.media = media
        self.ice_timeout = ice_timeout
        self.state = BridgeState.NEW
        self.route: Route | None = None
        self.account: Account | None = None
        self.legs: list[AgentLeg] = []
        self.winner: AgentLeg | None = None
        self.dialog: Dialog | None = None
        self._events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._rounds: list[tuple[int, ...]] = []
        self._round = -1
        self._round_started = 0  # legs of the current round that started ringing
        self._reasons: list[dict[str, Any]] = []  # why the agents did not take it
        self._rang = False
        self._timer: asyncio.TimerHandle | None = None
        self._handlers = {
            ev.SipCancelled: self._on_sip_cancelled,
            ev.SipReinvite: self._on_sip_reinvite,
            ev.SipInfo: self._on_sip_info,
            ev.SipEnded: self._on_sip_ended,
            ev.AgentRinging: self._on_agent_ringing,
            ev.AgentAccepted: self._on_agent_accepted,
            ev.AgentRejected: self._on_agent_gone,
            ev.AgentClosed: self._on_agent_gone,
            ev.AgentHungUp: self._on_agent_gone,
            ev.AgentIceState: self._on_agent_ice_state,
            ev.MediaLost: self._on_media_lost,
            ev.PhoneDtmf: self._on_phone_dtmf,
            ev.AppDtmf: self._on_app_dtmf,
            ev.AppHold: self._on_app_hold,
            ev.AppTransfer: self._on_app_transfer,
            ev.RingTimeout: self._on_ring_timeout,
            ev.IceTimeout: self._on_ice_timeout,
        }
        invite.handler = self  # on_cancel

    def __repr__(self) -> str:
        return f"<BridgedCall {self.request.call_id} {self.state.value}>"

    def _set_state(self, state: BridgeState) -> None:
        logger.debug("%r - %s -> %s", self, self.state.value, state.value)
        self.state = state

    def post(self, event: ev.Event) -> None:
        """Queue an event for the call's loop (from callbacks; never blocks)."""
        self._events.put_nowait(event)

    # --- the one loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Own the call until it is closed; the CDR is complete when this returns."""
        try:
            await self._start()
            while self.state is not BridgeState.CLOSED:
                event = await self._events.get()
                await self._handlers[type(event)](event)
        except asyncio.CancelledError:
            await self.close(EndReason.SHUTDOWN)
            raise
        except Exception as exc:
            logger.exception("%r failed", self)
            await self.close(EndReason.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            await self.close(EndReason.INTERNAL_ERROR)  # a no-op once closed
            while not self._events.empty():  # what arrived after the end: nothing left to do
                self._ignore(self._events.get_nowait(), "after the end")
            await self.records.flush()

    def _ignore(self, event: ev.Event, why: str = "") -> None:
        logger.debug("%r: %s ignored in %s%s", self, type(event).__name__, self.state.value, why and f" ({why})")

    # --- routing ----------------------------------------------------------------------------

    async def _start(self) -> None:
        request = self.request
        self.route = await self.records.find_route(str(request.uri), request.headers.get("To"))
        self.records.open(
            self.route,
            SipFacts(
                call_id=request.call_id,
                from_header=request.headers.get("From") or "",
                dialed=str(request.uri),
                linkedid=request.headers.get("X-CCBridge-Linkedid"),
                received_at=datetime.now(UTC),
            ),
        )
        self.records.event("sip.invite", uri=str(request.uri), call_id=request.call_id)
        if await self._cancelled_meanwhile():
            return
        if self.route is None:
            return await self.close(EndReason.NOT_FOUND)
        if not self.route.enabled:
            return await self.close(EndReason.DISABLED)
        if not self.invite.offer:
            return await self.close(EndReason.NOT_ACCEPTABLE, "INVITE without SDP")
        try:
            self.account = await self.accounts.account_for(self.route)
        except Exception as exc:
            logger.warning("%r: ConnectyCube login for %s failed: %s", self, self.route.sip_uri, exc)
            return await self.close(EndReason.UNAVAILABLE, f"ConnectyCube login failed: {exc}")
        if await self._cancelled_meanwhile():
            return
        self._rounds = self.route.ring_rounds()
        if not self._rounds:
            return await self.close(EndReason.NO_ANSWER)
        # Routed, and the agents are about to ring: say so now rather than once the media worker
        # has built the WebRTC offer (the app sends no alerting signal of its own).
        self._ringing()
        self._set_state(BridgeState.RINGING)
        await self._next_round()

    async def _cancelled_meanwhile(self) -> bool:
        """Close the call if its INVITE was cancelled while the call was being routed."""
        if self.invite.state is IncomingCallState.PROCEEDING:
            return False
        self.records.event("sip.cancel", reason=self.invite.cancel_reason)
        await self.close(cancel_reason(self.invite.cancel_reason))
        return True

    def _ringing(self) -> None:
        if not self._rang and self.invite.state is IncomingCallState.PROCEEDING:
            self._rang = True
            self.invite.send_provisional(180)
            self.records.event("sip.180")

    # --- ringing ----------------------------------------------------------------------------

    async def _on_agent_ringing(self, event: ev.AgentRinging) -> None:
        if self.state is BridgeState.RINGING:
            self._ringing()
        else:
            self._ignore(event)

    async def _on_agent_accepted(self, event: ev.AgentAccepted) -> None:
        leg = event.leg
        if self.state is not BridgeState.RINGING or leg.done or leg.call is None:
            return self._ignore(event, "not ringing")
        self.winner = leg
        self._timer_cancel()
        self.records.event("app.accepted", agent=leg.agent, session=leg.call.session_id)
        await self._hang_up(
            [x for x in self.legs if x is not leg and not x.done], EndReason.ANSWERED_ELSEWHERE.ending.app_reason
        )
        self._set_state(BridgeState.CONNECTING)
        self._timer_start(self.ice_timeout, ev.IceTimeout())
        if leg.call.connected:
            await self._answer()

    async def _on_agent_gone(self, event: ev.AgentRejected | ev.AgentClosed | ev.AgentHungUp) -> None:
        """An agent's call ended from its side: rejected, hung up, or closed (ICE, timeout)."""
        leg = event.leg
        if self.state is BridgeState.RINGING and not leg.done and leg.round == self._round:
            if isinstance(event, ev.AgentHungUp):
                return self._ignore(event, "its close follows")
            rejected = isinstance(event, ev.AgentRejected)
            info = event.info if rejected else {"reason": event.reason}
            self._reasons.append(info)
            self.records.event("app.rejected" if rejected else "app.closed", agent=leg.agent, info=info)
            leg.done = True
            await leg.media.close()
            if not self._ringing_legs():
                await self._round_over(timed_out=False)
        elif self.state in (BridgeState.CONNECTING, BridgeState.TALKING) and leg is self.winner:
            if self.state is BridgeState.TALKING:
                self.records.event("app.hangup", agent=leg.agent)
                return await self.close(EndReason.AGENT_HUNG_UP)
            ice = isinstance(event, ev.AgentClosed) and event.reason.startswith("ice")
            await self.close(EndReason.ICE_FAILED if ice else EndReason.NO_ANSWER)
        else:
            self._ignore(event, "not a live leg")

    async def _on_ring_timeout(self, event: ev.RingTimeout) -> None:
        if self.state is not BridgeState.RINGING or event.round != self._round:
            return self._ignore(event, "stale")
        assert self.route is not None
        self.records.event("ring.timeout", seconds=self.route.ring_timeout)
        await self._hang_up(self._ringing_legs(), EndReason.NO_ANSWER.ending.app_reason)
        await self._round_over(timed_out=True)

    async def _on_media_lost(self, event: ev.MediaLost) -> None:
        leg = event.leg
        if leg.done and leg is not self.winner:
            return self._ignore(event, "leg over")
        self.records.event("media.worker_lost", agent=leg.agent)
        if leg is self.winner or self.state is not BridgeState.RINGING:
            return await self.close(EndReason.MEDIA_LOST)
        await leg.hang_up(EndReason.MEDIA_LOST.ending.app_reason)  # this agent can't be bridged
        if not self._ringing_legs():
            if self._reasons or self._round + 1 < len(self._rounds):
                return await self._round_over(timed_out=False)
            await self.close(EndReason.MEDIA_LOST)

    async def _on_sip_cancelled(self, event: ev.SipCancelled) -> None:
        if self.state in (BridgeState.RINGING, BridgeState.CONNECTING):
            self.records.event("sip.cancel", reason=event.reason)
            return await self.close(cancel_reason(event.reason))
        self._ignore(event)

    # --- connecting -------------------------------------------------------------------------

    async def _on_agent_ice_state(self, event: ev.AgentIceState) -> None:
        leg = event.leg
        if self.state is BridgeState.CONNECTING and leg is self.winner and leg.call is not None:
            if leg.call.connected:
                await self._answer()
        else:
            self._ignore(event, event.state)

    async def _on_ice_timeout(self, event: ev.IceTimeout) -> None:
        if self.state is not BridgeState.CONNECTING:
            return self._ignore(event)
        self.records.event("app.ice_timeout")
        await self.close(EndReason.ICE_FAILED)

    async def _answer(self) -> None:
        leg = self.winner
        assert leg is not None and leg.call is not None and leg.phone_answer is not None
        if self.invite.state is not IncomingCallState.PROCEEDING:
            return  # a CANCEL crossed the accept: its event is queued and closes the call
        self._timer_cancel()
        self.dialog = self.invite.answer(leg.phone_answer)
        self.dialog.set_handler(self)
        self._set_state(BridgeState.TALKING)
        self.records.event("sip.200", agent=leg.agent)
        self.records.answered_by(leg.agent, leg.call.session_id)

    # --- talking ----------------------------------------------------------------------------

    async def _on_sip_ended(self, event: ev.SipEnded) -> None:
        if self.state is BridgeState.TALKING:
            self.records.event("sip.bye", by="phone")
            return await self.close(EndReason.PHONE_HUNG_UP)
        self._ignore(event, event.reason)

    async def _on_sip_reinvite(self, event: ev.SipReinvite) -> None:
        self.records.event("sip.reinvite", direction=sdp_direction(event.offer))

    async def _on_sip_info(self, event: ev.SipInfo) -> None:
        logger.info("%r: INFO %s not acted on", self, event.content_type or "(no body)")

    # --- the SIP stack's handler calls (InviteHandler, DialogHandler) -----------------------

    def on_cancel(self, reason: str) -> None:
        self.post(ev.SipCancelled(reason))

    async def on_reinvite(self, request: SipRequest) -> str | None:
        """Asterisk's direct-media re-INVITE (or a hold): move the RTP, mirror the direction.

        Answered here, in the dialog's task, not in the loop: the dialog waits for the answer."""
        offer = request.sdp
        if not offer:
            raise SipStatusError(488, "re-INVITE without SDP")
        if self.winner is None or self.state is not BridgeState.TALKING:
            raise SipStatusError(491, "Request Pending")
        try:
            answer = await self.winner.media.answer_phone(offer)
        except Exception as exc:  # NotAcceptable, MediaError
            raise SipStatusError(488, str(exc)[:100]) from exc
        self.post(ev.SipReinvite(offer))
        return answer

    def on_info(self, request: SipRequest) -> None:
        self.post(ev.SipInfo(request.headers.get("Content-Type") or "", request.body.decode(errors="replace")))

    def on_terminated(self, reason: str) -> None:
        self.post(ev.SipEnded(reason))

    # --- timers -----------------------------------------------------------------------------

    def _timer_start(self, delay: float, event: ev.Event) -> None:
        self._timer_cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self.post, event)

    def _timer_cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- the end ----------------------------------------------------------------------------

    async def close(self, reason: EndReason, detail: str = "") -> None:
        """End the call once: answer the INVITE or hang up, release the media, end the CDR."""
        if self.state is BridgeState.CLOSED:
            return
        answered = self.dialog is not None
        self._set_state(BridgeState.CLOSED)
        self._timer_cancel()
        finish = Finish(reason, detail, answered=answered)
        try:
            await self._close_sip(reason, detail)
            finish.stats = await self._close_app(reason)
        finally:
            await asyncio.gather(*(leg.release() for leg in self.legs), return_exceptions=True)
            self.records.finish(finish)
            if answered:
                self.records.event("call.end", reason=finish.text, q850=reason.ending.q850)

    async def _close_sip(self, reason: EndReason, detail: str) -> None:
        if self.invite.state is IncomingCallState.PROCEEDING:
            status = reason.ending.sip_status
            try:
                self.invite.reject(status)
            except InvalidStateError as exc:  # the final response went out meanwhile
                logger.info("%r: %s", self, exc)
            self.records.event("sip.reject", status=status, reason=detail or reason.ending.text)
        elif self.dialog is not None and not self.dialog.terminated.is_set():
            try:
                await self.dialog.bye()
            except Exception:
                logger.exception("%r: BYE failed", self)

    async def _close_app(self, reason: EndReason) -> dict[str, Any] | None:
        """Hang up the agents still ringing or talking; return the bridged session's stats."""
        winner = self.winner
        stats = await winner.media.stats() if winner is not None and self.dialog is not None else None
        # The winner is told too (a hang-up of a call it ended itself is a no-op).
        await self._hang_up([leg for leg in self.legs if not leg.done or leg is winner], reason.ending.app_reason)
        return stats

    async def _hang_up(self, legs: list[AgentLeg], reason: str) -> None:
        await asyncio.gather(*(leg.hang_up(reason) for leg in legs), return_exceptions=True)
