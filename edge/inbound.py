"""One inbound call: a SIP INVITE from Asterisk's ccbridge trunk to a department's agents.

One coroutine owns the call (`InboundCall.run`), waiting on one queue for everything that can
happen to it — an agent accepts or rejects, the caller cancels, a timer fires, the phone or the
app hangs up, the media worker dies — and deciding. The SIP dialog, the ConnectyCube calls and
the media sessions only report. Closing happens once, in `_finish`.

Ringing: each agent gets a ConnectyCube call whose media end is its own session on a media
worker (the SDK needs an offer in `call`). The first to accept wins; the others get `hangUp`
("answered elsewhere") and their sessions close. 180 goes out once the app rings; 200 OK only
once the winner's WebRTC leg is connected, so no audio is clipped.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from calls.board import send_board
from calls.models import Call, Disposition
from connectycube.call import P2PCall
from connectycube.signalling import CallType
from media.control import MediaError, RemotePeer, RemoteSession
from sip.call import ServerInvite
from sip.dialog import Dialog
from sip.errors import InvalidStateError, SipStatusError

from . import records

if TYPE_CHECKING:
    from mappings.models import SipMapping

    from .service import EdgeService

logger = logging.getLogger(__name__)

# How long to wait for the AMI listener's row of the same call (found by Linkedid) before the
# edge writes its own; no listener (a PBX without runami) means a row of the edge's own.
LINKEDID_WAIT = 1.5
# An indexed lookup: polling often costs little and the caller hears ringing that much sooner.
LINKEDID_POLL = 0.02


class Outcome(enum.Enum):
    """How a call ended, and what that means in SIP and in the CDR."""

    NOT_FOUND = (404, Disposition.FAILED, "no mapping for this SIP URI")
    DISABLED = (480, Disposition.FAILED, "the mapping is disabled")
    UNAVAILABLE = (503, Disposition.FAILED, "ConnectyCube or the media workers are unavailable")
    BUSY = (486, Disposition.BUSY, "rejected by the agents (busy)")
    DECLINED = (603, Disposition.FAILED, "rejected by the agents")
    NO_ANSWER = (480, Disposition.NO_ANSWER, "no agent answered")
    CANCELLED = (487, Disposition.NO_ANSWER, "the caller hung up while ringing")
    ANSWERED_ELSEWHERE = (487, Disposition.NO_ANSWER, "answered elsewhere (Asterisk cancelled)")
    NOT_ACCEPTABLE = (488, Disposition.FAILED, "no common codec with the phone")

    def __init__(self, status: int, disposition: str, text: str) -> None:
        self.status = status
        self.disposition = disposition
        self.text = text


@dataclass
class Leg:
    """One agent being rung: its ConnectyCube call and its media session on a worker."""

    agent: int
    session: RemoteSession
    call: P2PCall | None = None
    phone_answer: str | None = None  # our SDP for the phone, from this leg's session
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class InboundCall:
    def __init__(self, service: EdgeService, invite: ServerInvite) -> None:
        self.service = service
        self.invite = invite
        self.request = invite.request
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.mapping: SipMapping | None = None
        self.row: Call | None = None
        self.legs: list[Leg] = []
        self.winner: Leg | None = None
        self.dialog: Dialog | None = None
        self._rang = False
        self._finished = False
        self._row_task: asyncio.Future[None] | None = None
        self._received_at = timezone.now()
        # CDR writes, applied in order by `_write_records` so that the call never waits on the
        # database (one ORM thread serves every call of the edge).
        self._writes: asyncio.Queue[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None] = (
            asyncio.Queue()
        )
        self._writer: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<InboundCall {self.request.call_id}>"

    # --- the one loop ---------------------------------------------------------------------

    async def run(self) -> None:
        self._writer = asyncio.ensure_future(self._write_records())
        try:
            await self._run()
        except Exception:
            logger.exception("%r failed", self)
            await self._fail(Outcome.UNAVAILABLE, "internal error")
        finally:
            try:
                await self._release()
            finally:
                self._writes.put_nowait(None)
                await self._writer  # the CDR is complete before the call is forgotten

    async def _run(self) -> None:
        request = self.request
        self.invite.on_state_change = lambda state: self.events.put_nowait(("sip", state))
        # Reads go to a pool thread: the shared ORM thread may be busy with other calls' writes.
        self.mapping = await sync_to_async(records.find_mapping, thread_sensitive=False)(
            str(request.uri), request.headers.get("To")
        )
        # The CDR row is opened alongside ringing: the AMI listener usually has written it by
        # the time our INVITE arrives, but waiting for it must not hold up the caller.
        self._row_task = asyncio.ensure_future(self._open_row())
        if self.mapping is None:
            return await self._fail(Outcome.NOT_FOUND)
        if not self.mapping.enabled:
            return await self._fail(Outcome.DISABLED)
        if not self.invite.offer:
            return await self._fail(Outcome.NOT_ACCEPTABLE, "INVITE without SDP")
        try:
            account = await self.service.account_for(self.mapping)
        except Exception as exc:
            logger.warning("%r: ConnectyCube login for %s failed: %s", self, self.mapping, exc)
            return await self._fail(Outcome.UNAVAILABLE, f"ConnectyCube login failed: {exc}")
        self.account = account
        if self.mapping.agents:
            # Routed, and the agents are about to ring: say so now rather than once the media
            # worker has built the WebRTC offer (the app sends no alerting signal of its own).
            await self._ringing()

        outcome = await self._ring()
        if outcome is not None:
            return await self._fail(outcome)
        await self._talk()

    async def _open_row(self) -> None:
        request = self.request
        try:
            existing = await self._listener_row(request.headers.get("X-CCBridge-Linkedid"))
            self.row, board = await sync_to_async(records.open_call)(
                self.mapping,
                existing,
                sip_call_id=request.call_id,
                from_header=request.headers.get("From") or "",
                dialed=str(request.uri),
            )
            await sync_to_async(records.event)(
                self.row, "sip.invite", self._received_at, uri=str(request.uri), call_id=request.call_id
            )
        except Exception:
            # The call goes on; the listener's own row (if any) still records it.
            logger.exception("%r: could not open the CDR row", self)
            return
        await send_board(board)

    async def _wait_row(self) -> Call | None:
        """The CDR row, once `_open_row` is done (None if it could not be written)."""
        if self._row_task is not None and not self._row_task.done():
            await asyncio.wait([self._row_task])
        return self.row

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue `fn(row, *args, **kwargs)` (a `records` function) for the call's writer."""
        self._writes.put_nowait((fn, args, kwargs))

    async def _write_records(self) -> None:
        await self._wait_row()
        while (item := await self._writes.get()) is not None:
            if self.row is None:
                continue  # no CDR row could be opened: nothing to write to
            fn, args, kwargs = item
            try:
                board = await sync_to_async(fn)(self.row, *args, **kwargs)
            except Exception:
                logger.exception("%r: could not write %s to the CDR", self, fn.__name__)
                continue
            if board:
                await send_board(board)

    async def _ringing(self) -> None:
        if self._rang or self.invite.state.value != "proceeding":
            return
        self._rang = True
        self.invite.send_provisional(180)
        await self._event("sip.180")

    @staticmethod
    async def _listener_row(linkedid: str | None) -> Call | None:
        """The AMI listener's row for this call, waiting a little: it usually writes it (at
        Newchannel) before our INVITE arrives. Waits here, not in the ORM thread all calls share."""
        if not linkedid:
            return None
        for _ in range(round(LINKEDID_WAIT / LINKEDID_POLL)):
            # A read on a pool thread: polling must not queue behind other calls' writes.
            row = await sync_to_async(records.listener_row, thread_sensitive=False)(linkedid)
            if row is not None:
                return row
            await asyncio.sleep(LINKEDID_POLL)
        return None

    # --- ringing --------------------------------------------------------------------------

    async def _ring(self) -> Outcome | None:
        """Ring the agents; return None once one accepted and connected, else why not."""
        assert self.mapping is not None
        agents = list(self.mapping.agents)
        if not agents:
            return Outcome.NO_ANSWER
        timeout = float(self.mapping.ring_timeout)
        if self.mapping.ring_strategy == "sequential":
            reasons: list[dict[str, Any]] = []
            for agent in agents:
                outcome = await self._ring_group([agent], timeout, reasons)
                if outcome is None or outcome in (
                    Outcome.CANCELLED,
                    Outcome.UNAVAILABLE,
                    Outcome.ANSWERED_ELSEWHERE,
                    Outcome.NOT_ACCEPTABLE,
                ):
                    return outcome
            return self._rejection(reasons)
        return await self._ring_group(agents, timeout, [])

    async def _ring_group(
        self, agents: list[int], ring_for: float, reasons: list[dict[str, Any]]
    ) -> Outcome | None:
        started = await asyncio.gather(*(self._start_leg(agent) for agent in agents), return_exceptions=True)
        legs = [leg for leg in started if isinstance(leg, Leg)]
        for failure in (s for s in started if isinstance(s, BaseException)):
            logger.warning("%r: could not ring an agent: %s", self, failure)
        if not legs:
            if any(isinstance(s, ValueError) for s in started):
                return Outcome.NOT_ACCEPTABLE
            return Outcome.UNAVAILABLE
        self._write(records.update, agents_ringing=[leg.agent for leg in legs], app_state="ringing")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ring_for
        ringing = set(id(leg) for leg in legs)
        while True:
            try:
                kind, data = await asyncio.wait_for(self.events.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                await self._event("ring.timeout", seconds=ring_for)
                await self._hang_up_legs(legs, "not answered")
                return Outcome.NO_ANSWER
            if kind == "sip" and self.invite.cancelled.is_set():
                return await self._cancelled(legs)
            if kind == "ringing":
                await self._ringing()
            elif kind == "accepted":
                leg = data
                self.winner = leg
                await self._event("app.accepted", agent=leg.agent, session=leg.call.session_id)
                await self._hang_up_legs([x for x in legs if x is not leg], "answered elsewhere")
                return await self._connect(leg)
            elif kind in ("rejected", "closed") and id(data[0]) in ringing:
                leg, info = data
                ringing.discard(id(leg))
                reasons.append(info)
                await self._event(f"app.{kind}", agent=leg.agent, info=info)
                await self._close_leg(leg)
                if not ringing:
                    return self._rejection(reasons) if len(legs) == len(agents) else Outcome.NO_ANSWER

    async def _cancelled(self, legs: list[Leg]) -> Outcome:
        """Asterisk cancelled the INVITE: the caller hung up, or another phone answered."""
        header = self.service.endpoint.cancel_reasons.pop(self.request.call_id, "")
        elsewhere = "cause=200" in header.replace(" ", "") or "elsewhere" in header.lower()
        await self._event("sip.cancel", reason=header)
        await self._hang_up_legs(legs, "answered elsewhere" if elsewhere else "caller hung up")
        return Outcome.ANSWERED_ELSEWHERE if elsewhere else Outcome.CANCELLED

    def _rejection(self, reasons: list[dict[str, Any]]) -> Outcome:
        if not reasons:
            return Outcome.NO_ANSWER
        if any(str(r.get("busy", "")).lower() in ("true", "1") or r.get("already_on_call") for r in reasons):
            return Outcome.BUSY
        if all(r.get("reason") == "not answered" for r in reasons):
            return Outcome.NO_ANSWER
        return Outcome.DECLINED

    async def _start_leg(self, agent: int) -> Leg:
        """Start a media session for one agent, apply the phone's offer to it, and ring the agent."""
        assert self.mapping is not None
        session = RemoteSession(self.service.redis_url, timeout=self.service.media_timeout)
        leg = Leg(agent=agent, session=session)
        await self.service.start_media(session.session_id, prefer_opus=self.mapping.prefer_opus)
        try:
            await session.wait_started(self.service.media_start_timeout)
            peer = RemotePeer(session)
            session.on_event = lambda name, data: self._on_media_event(leg, peer, name, data)
            leg.phone_answer = (await session.request("set_rtp_remote", sdp=self.invite.offer))["sdp"]
            user_info = {
                "callerName": self.mapping.display_name,
                "department": self.mapping.display_name,
                "callerNumber": (self.row.caller_number if self.row else "")
                or records.caller_of(self.request.headers.get("From") or ""),
            }
            call = self.account.new_call(agent, CallType.AUDIO, user_info, peer=peer)
            leg.call = call
            call.on("ringing", lambda: self.events.put_nowait(("ringing", leg)))
            call.on("accepted", lambda user_id: self.events.put_nowait(("accepted", leg)))
            call.on("rejected", lambda user_id, info: self.events.put_nowait(("rejected", (leg, dict(info or {})))))
            call.on("hung_up", lambda user_id, info: self.events.put_nowait(("app_hangup", (leg, dict(info or {})))))
            call.on("closed", lambda reason: self.events.put_nowait(("closed", (leg, {"reason": reason}))))
            call.on("ice_state", lambda state: self.events.put_nowait(("ice", (leg, state))))
            self.legs.append(leg)
            await call.start()
        except MediaError as exc:
            await session.close()
            if "codec" in str(exc).lower():
                raise ValueError(str(exc)) from exc
            raise
        return leg

    def _on_media_event(self, leg: Leg, peer: RemotePeer, name: str, data: dict[str, Any]) -> None:
        if name == "ice_state":
            peer.ice_state(data.get("state", ""))
        elif name == "dtmf" and leg is self.winner:
            self.events.put_nowait(("phone_dtmf", data.get("digit", "")))
        elif name == "worker_lost":
            self.events.put_nowait(("worker_lost", leg))

    async def _connect(self, leg: Leg) -> Outcome | None:
        """Wait for the winner's WebRTC leg, then answer the phone."""
        assert leg.call is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.service.ice_timeout
        while leg.call.state.value != "connected":
            try:
                kind, data = await asyncio.wait_for(self.events.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                await self._event("app.ice_timeout")
                await self._hang_up_legs([leg], "ice timeout")
                return Outcome.UNAVAILABLE
            if kind == "sip" and self.invite.cancelled.is_set():
                return await self._cancelled([leg])
            if kind in ("closed", "app_hangup", "worker_lost") and self._is(leg, data):
                await self._close_leg(leg)
                return Outcome.NO_ANSWER if kind != "worker_lost" else Outcome.UNAVAILABLE
        assert leg.phone_answer is not None
        self.dialog = self.invite.answer(leg.phone_answer)
        self.dialog.on_reinvite = self._on_reinvite
        self.dialog.on_state_change = lambda state: self.events.put_nowait(("dialog", state))
        await self._event("sip.200", agent=leg.agent)
        self._write(
            records.update,
            agent_cc_user_id=leg.agent,
            cc_session_id=leg.call.session_id,
            agents_ringing=[],
            app_state="connected",
        )
        return None

    @staticmethod
    def _is(leg: Leg, data: Any) -> bool:
        return data is leg or (isinstance(data, tuple) and data and data[0] is leg)

    async def _on_reinvite(self, request: Any) -> str:
        """Asterisk's direct-media re-INVITE (or a hold): move the RTP, mirror the direction."""
        assert self.winner is not None
        offer = request.sdp
        if not offer:
            raise SipStatusError(488, "re-INVITE without SDP")
        try:
            answer = (await self.winner.session.request("set_rtp_remote", sdp=offer))["sdp"]
        except MediaError as exc:
            raise SipStatusError(488, str(exc)) from exc
        self.events.put_nowait(("reinvite", offer))
        return answer

    # --- talking --------------------------------------------------------------------------

    async def _talk(self) -> None:
        leg = self.winner
        assert leg is not None and leg.call is not None and self.dialog is not None
        reason = "ended"
        while True:
            kind, data = await self.events.get()
            if kind == "dialog" and self.dialog.terminated.is_set():
                reason = "the phone hung up"
                await self._event("sip.bye", by="phone")
                await leg.call.hangup({"reason": "bye"})
                break
            if kind in ("app_hangup", "closed") and self._is(leg, data):
                reason = "the agent hung up"
                await self._event("app.hangup", agent=leg.agent)
                await self.dialog.bye()
                break
            if kind == "worker_lost" and data is leg:
                reason = "the media worker died"
                await self._event("media.worker_lost")
                await self.dialog.bye()
                await leg.call.hangup({"reason": "media failure"})
                break
            if kind == "phone_dtmf":
                await self._event("dtmf.phone", digit=data)
                await self.account.send_system_message(
                    leg.agent, {"type": "dtmf", "digit": data, "sessionID": leg.call.session_id}, "dtmf"
                )
            elif kind == "app_dtmf":
                await self._event("dtmf.app", digit=data)
                try:
                    await leg.session.request("send_dtmf", digits=data)
                except MediaError as exc:
                    logger.warning("%r: DTMF to the phone failed: %s", self, exc)
            elif kind == "reinvite":
                await self._event("sip.reinvite", direction=sdp_direction(data))
            elif kind == "app_hold":
                await self._hold(data)
            elif kind == "app_transfer":
                await self._transfer(data)
        stats = None
        try:
            stats = await leg.session.request("stats", timeout=3)
        except MediaError:
            pass
        self._write(records.finish_answered, reason=reason, stats=stats)
        await self._event("call.end", reason=reason)

    async def _hold(self, on: bool) -> None:
        """Hold (we only send: Asterisk plays music on hold to the phone) or resume the phone."""
        assert self.dialog is not None and self.winner is not None
        direction = "sendonly" if on else "sendrecv"
        if not self.dialog.local_sdp:
            return
        offer = with_direction(self.dialog.local_sdp, direction)
        try:
            answer = await self.dialog.reinvite(offer)
            await self.winner.session.request("set_hold", direction=direction)
        except (SipStatusError, InvalidStateError, MediaError) as exc:
            logger.warning("%r: %s failed: %s", self, "hold" if on else "resume", exc)
            await self._event("sip.hold_failed", direction=direction, error=str(exc))
            return
        await self._event(
            "sip.hold" if on else "sip.unhold", direction=direction, answer=sdp_direction(answer or "")
        )

    async def _transfer(self, exten: str) -> None:
        """Blind-transfer the caller to an extension: Asterisk moves them, then hangs up our leg."""
        try:
            # Its own thread: the AMI round trip must not hold up the other calls' ORM writes.
            how = await sync_to_async(records.transfer, thread_sensitive=False)(self.row, exten)
        except Exception as exc:  # the AMI listener is down, the channel is gone, ...
            logger.warning("%r: transfer to %s failed: %s", self, exten, exc)
            await self._event("app.transfer_failed", exten=exten, error=str(exc))
            return
        await self._event("app.transfer", exten=exten, via=how)

    def app_control(self, session_id: str, kind: str, fields: dict[str, str]) -> None:
        """Hold, resume or transfer from the agent app (system messages to the department)."""
        if not (self.winner and self.winner.call and self.winner.call.session_id == session_id):
            return
        if kind in ("hold", "unhold"):
            self.events.put_nowait(("app_hold", kind == "hold"))
        elif kind == "transfer" and re.fullmatch(r"[0-9*#+]{1,32}", fields.get("exten", "")):
            self.events.put_nowait(("app_transfer", fields["exten"]))

    def app_dtmf(self, session_id: str, digit: str) -> None:
        """A keypad press in the agent app (a system message to the department's account)."""
        if self.winner and self.winner.call and self.winner.call.session_id == session_id:
            self.events.put_nowait(("app_dtmf", digit))

    # --- endings --------------------------------------------------------------------------

    async def _fail(self, outcome: Outcome, detail: str = "") -> None:
        if self._finished:
            return
        self._finished = True
        if self.invite.state.value == "proceeding":
            self.invite.reject(outcome.status)
        await self._event("sip.reject", status=outcome.status, reason=detail or outcome.text)
        self._write(
            records.finish_unanswered,
            sip_status=outcome.status, reason=detail or outcome.text, disposition=outcome.disposition,
        )


    async def _hang_up_legs(self, legs: list[Leg], reason: str) -> None:
        await asyncio.gather(*(self._hang_up_leg(leg, reason) for leg in legs), return_exceptions=True)

    async def _hang_up_leg(self, leg: Leg, reason: str) -> None:
        if leg.call is not None:
            await leg.call.hangup({"reason": reason})
        await self._close_leg(leg)

    async def _close_leg(self, leg: Leg) -> None:
        if not leg.done:
            leg.done = True
            await leg.session.close()

    async def _release(self) -> None:
        for leg in self.legs:
            if leg.call is not None:
                await leg.call.close("released")
            await self._close_leg(leg)
        if self.dialog is not None and not self.dialog.terminated.is_set():
            await self.dialog.bye()
        self.service.endpoint.cancel_reasons.pop(self.request.call_id, None)
        self.service.forget(self)

    async def _event(self, kind: str, **payload: Any) -> None:
        self._write(records.event, kind, timezone.now(), **payload)


DIRECTION_LINE = re.compile(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", re.M)


def sdp_direction(sdp: str) -> str:
    """The (first) direction attribute of an SDP; sendrecv when none."""
    match = DIRECTION_LINE.search(sdp or "")
    return match.group(1) if match else "sendrecv"


def with_direction(sdp: str, direction: str) -> str:
    """Our SDP again with another direction and the next o= version (RFC 3264 §8)."""
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    out, placed = [], False
    for line in lines:
        if line.startswith("o="):
            parts = line.split(" ")
            if len(parts) >= 3 and parts[2].isdigit():
                parts[2] = str(int(parts[2]) + 1)
            line = " ".join(parts)
        elif DIRECTION_LINE.match(line):
            line, placed = f"a={direction}", True
        out.append(line)
    if not placed:
        out.append(f"a={direction}")
    return "\r\n".join(out) + "\r\n"
