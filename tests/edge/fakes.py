"""Queue-backed fakes of what a bridged call talks to: the INVITE and its dialog, the CDR, the
department's ConnectyCube account and its calls, the media workers. The test drives them the way
the real ones would behave, and reads what the call did from their queues and lists."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from edge.ports import Finish, NotAcceptable, Route, SipFacts
from sip.call import IncomingCallState
from sip.sdp import with_direction

PHONE_OFFER = "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"


def answer_sdp(port: int) -> str:
    return f"v=0\r\no=bridge 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"


class Headers(dict):
    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name, default)


@dataclass
class Request:
    uri: str = "sip:vendas@empresa.com"
    call_id: str = "call-1@pbx"
    headers: Headers = field(
        default_factory=lambda: Headers({"From": "<sip:5511999990000@pbx>", "To": "<sip:vendas@empresa.com>"})
    )
    sdp: str | None = None
    body: bytes = b""


class FakeDialog:
    def __init__(self, local_sdp: str) -> None:
        self.local_sdp = local_sdp
        self.terminated = asyncio.Event()
        self.handler: Any = None
        self.byes = 0
        self.reinvites: list[str] = []

    def set_handler(self, handler: Any) -> None:
        self.handler = handler

    async def bye(self) -> None:
        if self.terminated.is_set():
            return
        self.byes += 1
        self._end("local bye")

    async def reinvite(self, sdp: str) -> str:
        self.reinvites.append(sdp)
        self.local_sdp = sdp
        return with_direction(PHONE_OFFER, "recvonly" if "a=sendonly" in sdp else "sendrecv")

    def remote_bye(self) -> None:
        """The phone hangs up."""
        self._end("remote bye")

    def _end(self, reason: str) -> None:
        self.terminated.set()
        self.handler.on_terminated(reason)


class FakeInvite:
    def __init__(self, request: Request | None = None, offer: str | None = PHONE_OFFER) -> None:
        self.request = request or Request()
        self.offer = offer
        self.state = IncomingCallState.PROCEEDING
        self.cancel_reason = ""
        self.handler: Any = None
        self.provisional: list[int] = []
        self.rejected: int | None = None
        self.dialog: FakeDialog | None = None
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()  # a final response went out

    def send_provisional(self, status: int) -> None:
        assert self.state is IncomingCallState.PROCEEDING
        self.provisional.append(status)

    def answer(self, sdp: str) -> FakeDialog:
        assert self.state is IncomingCallState.PROCEEDING
        self.state = IncomingCallState.ANSWERED
        self.dialog = FakeDialog(sdp)
        self.answered.set()
        self.ended.set()
        return self.dialog

    def reject(self, status: int) -> None:
        assert self.state is IncomingCallState.PROCEEDING
        self.state = IncomingCallState.REJECTED
        self.rejected = status
        self.ended.set()

    def cancel(self, reason: str = "") -> None:
        """Asterisk's CANCEL: the stack answers 487 and tells the handler."""
        self.state = IncomingCallState.CANCELLED
        self.cancel_reason = reason
        self.ended.set()
        self.handler.on_cancel(reason)


class FakeRecords:
    def __init__(self, route: Route | None) -> None:
        self.route = route
        self.opened: SipFacts | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ringing_agents: list[list[int]] = []
        self.answered: tuple[int, str] | None = None
        self.finished: list[Finish] = []
        self.transfers: list[str] = []
        self.fail_on: str | None = None  # an event kind whose write raises
        self.flushed = False

    async def find_route(self, *candidates: str | None) -> Route | None:
        return self.route

    def open(self, route: Route | None, sip: SipFacts) -> None:
        self.opened = sip

    async def caller_number(self) -> str:
        return "5511999990000"

    def event(self, kind: str, **payload: Any) -> None:
        if kind == self.fail_on:
            raise RuntimeError(f"cannot write {kind}")
        self.events.append((kind, payload))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def ringing(self, agents: list[int]) -> None:
        self.ringing_agents.append(agents)

    def answered_by(self, agent: int, session_id: str) -> None:
        self.answered = (agent, session_id)

    def finish(self, finish: Finish) -> None:
        self.finished.append(finish)

    async def transfer(self, exten: str) -> str:
        self.transfers.append(exten)
        return "BlindTransfer"

    async def flush(self) -> None:
        self.flushed = True


class FakeAppCall:
    """The ConnectyCube call to one agent; the test plays the agent's app."""

    def __init__(self, agent: int, user_info: dict[str, Any], peer: Any) -> None:
        self.agent = agent
        self.session_id = f"session-{agent}"
        self.user_info = user_info
        self.peer = peer
        self.connected = False
        self.closed: str | None = None
        self.hangups: list[dict[str, Any]] = []
        self._handlers: dict[str, list[Any]] = {}

    def on(self, event: str, f: Any) -> None:
        self._handlers.setdefault(event, []).append(f)

    def emit(self, event: str, *args: Any) -> None:
        for f in self._handlers.get(event, []):
            f(*args)

    async def start(self) -> None:
        self.emit("ringing")

    async def hangup(self, user_info: dict[str, Any] | None = None) -> None:
        if self.closed is None:
            self.hangups.append(dict(user_info or {}))
        await self.close("hung up")

    async def close(self, reason: str = "closed") -> None:
        if self.closed is None:
            self.closed = reason
            self.emit("closed", reason)

    # --- the agent's app ---

    def accept(self, connect: bool = True) -> None:
        self.emit("accepted", self.agent)
        if connect:
            self.ice("connected")

    def ice(self, state: str) -> None:
        self.connected = state in ("connected", "completed")
        self.emit("ice_state", state)

    def reject(self, **info: Any) -> None:
        self.emit("rejected", self.agent, info)
        self.closed = "rejected by peer"
        self.emit("closed", "rejected by peer")

    def remote_hangup(self) -> None:
        self.emit("hung_up", self.agent, {})
        self.closed = "hung up by peer"
        self.emit("closed", "hung up by peer")

    def fail(self, reason: str = "ice failed") -> None:
        self.closed = reason
        self.emit("closed", reason)


class FakeAccount:
    def __init__(self) -> None:
        self.calls: asyncio.Queue[FakeAppCall] = asyncio.Queue()
        self.by_agent: dict[int, FakeAppCall] = {}
        self.system_messages: list[tuple[int, dict[str, str]]] = []

    def new_call(self, user_id: int, call_type: int, user_info: dict[str, Any], *, peer: Any) -> FakeAppCall:
        call = FakeAppCall(user_id, user_info, peer)
        self.by_agent[user_id] = call
        self.calls.put_nowait(call)
        return call

    async def send_system_message(self, user_id: int, fields: dict[str, str], body: str = "") -> None:
        self.system_messages.append((user_id, fields))


class FakeAccounts:
    def __init__(self, fail: Exception | None = None) -> None:
        self.account = FakeAccount()
        self.fail = fail

    async def account_for(self, route: Route) -> FakeAccount:
        if self.fail is not None:
            raise self.fail
        return self.account


class FakeMediaLeg:
    def __init__(self, n: int, not_acceptable: bool) -> None:
        self.session_id = f"media-{n}"
        self.peer = object()
        self.on_event: Any = None
        self.port = 20000 + 2 * n
        self.not_acceptable = not_acceptable
        self.offers: list[str] = []
        self.hold: list[str] = []
        self.dtmf: list[str] = []
        self.closed = False

    async def answer_phone(self, offer: str) -> str:
        if self.not_acceptable:
            raise NotAcceptable("no common audio codec")
        self.offers.append(offer)
        return answer_sdp(self.port)

    async def set_hold(self, direction: str) -> None:
        self.hold.append(direction)

    async def send_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)

    async def stats(self) -> dict[str, Any]:
        return {"rtp": {"codec": "PCMU", "packets_received": 100, "packets_lost": 0}}

    async def close(self) -> None:
        self.closed = True

    # --- the worker ---

    def lose(self) -> None:
        self.on_event("worker_lost", {})

    def phone_dtmf(self, digit: str) -> None:
        self.on_event("dtmf", {"digit": digit})


class FakeMedia:
    def __init__(self, not_acceptable: bool = False) -> None:
        self.legs: list[FakeMediaLeg] = []
        self.not_acceptable = not_acceptable

    async def open(self, *, prefer_opus: bool) -> FakeMediaLeg:
        leg = FakeMediaLeg(len(self.legs), self.not_acceptable)
        self.legs.append(leg)
        return leg
