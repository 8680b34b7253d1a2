"""The ring strategy of a bridged call: which agents ring, round after round, and why it ends.

Parallel: one round with every agent; the first accept wins. Sequential: one agent per round,
each for the ring timeout. A mixin of `BridgedCall` (`edge.call`). Django-free.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from . import events as ev
from .endings import EndReason
from .legs import AgentLeg, ring
from .ports import BridgeState, NotAcceptable, RingStrategy

if TYPE_CHECKING:
    from .call import BridgedCall

logger = logging.getLogger(__name__)


class Ringing:
    async def _next_round(self: BridgedCall) -> None:
        """Ring the next round's agents; close the call when none of them could be rung."""
        assert self.route is not None and self.account is not None
        self._round += 1
        agents = self._rounds[self._round]
        user_info = {
            "callerName": self.route.display_name,
            "department": self.route.display_name,
            "callerNumber": await self.records.caller_number(),
        }
        results = await asyncio.gather(*(self._ring_agent(a, user_info) for a in agents), return_exceptions=True)
        started = [r for r in results if isinstance(r, AgentLeg)]
        self._round_started = len(started)
        if self.state is not BridgeState.RINGING:
            return  # closed while the legs were starting: close() released them
        if not started:
            failures = [r for r in results if isinstance(r, BaseException)]
            if any(isinstance(f, NotAcceptable) for f in failures):
                return await self.close(EndReason.NOT_ACCEPTABLE)
            return await self.close(EndReason.UNAVAILABLE, "; ".join(str(f) for f in failures)[:200])
        self.records.ringing([leg.agent for leg in started])
        self._timer_start(self.route.ring_timeout, ev.RingTimeout(self._round))

    async def _ring_agent(self: BridgedCall, agent: int, user_info: dict[str, Any]) -> AgentLeg:
        assert self.account is not None and self.route is not None
        media = await self.media.open(prefer_opus=self.route.prefer_opus)
        leg = AgentLeg(agent=agent, round=self._round, media=media)
        self.legs.append(leg)
        try:
            assert self.invite.offer is not None
            await ring(leg, self.account, self.invite.offer, user_info, self.post)
        except BaseException as exc:
            logger.warning("%r: could not ring agent %s: %s", self, agent, exc)
            await leg.hang_up("failed")
            raise
        return leg

    def _ringing_legs(self: BridgedCall) -> list[AgentLeg]:
        return [leg for leg in self.legs if leg.round == self._round and not leg.done]

    async def _round_over(self: BridgedCall, timed_out: bool) -> None:
        """Nobody of this round took the call: ring the next round, or give up."""
        assert self.route is not None
        if self._round + 1 < len(self._rounds):
            return await self._next_round()
        parallel = self.route.ring_strategy is RingStrategy.PARALLEL
        if parallel and (timed_out or self._round_started < len(self._rounds[0])):
            return await self.close(EndReason.NO_ANSWER)
        await self.close(self._rejection())

    def _rejection(self: BridgedCall) -> EndReason:
        reasons = self._reasons
        if not reasons:
            return EndReason.NO_ANSWER
        if any(str(r.get("busy", "")).lower() in ("true", "1") or r.get("already_on_call") for r in reasons):
            return EndReason.BUSY
        if all(r.get("reason") == "not answered" for r in reasons):
            return EndReason.NO_ANSWER
        return EndReason.DECLINED
