"""One agent being rung: its ConnectyCube call and its media session on a worker. Django-free.

A leg only reports: every ConnectyCube and media event becomes a typed event on its call's queue,
and the call decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectycube.signalling import CallType

from . import events as ev
from .ports import Account, AppCall, MediaLeg

logger = logging.getLogger(__name__)

Post = Callable[[ev.Event], None]


@dataclass(eq=False)  # legs are compared by identity
class AgentLeg:
    agent: int
    round: int
    media: MediaLeg
    call: AppCall | None = None
    phone_answer: str | None = None  # our SDP for the phone, from this leg's session
    done: bool = False  # no longer ringing: it rejected, closed or was hung up

    def __repr__(self) -> str:
        return f"<AgentLeg agent={self.agent} round={self.round}{' done' if self.done else ''}>"

    async def hang_up(self, reason: str) -> None:
        """Stop ringing (or end) this agent's call and release its media; idempotent."""
        self.done = True
        if self.call is not None:
            try:
                await self.call.hangup({"reason": reason})
            except Exception:
                logger.exception("%r: hang-up failed", self)
        await self.media.close()

    async def release(self) -> None:
        """Drop the call without signalling and release the media (the call is over)."""
        self.done = True
        if self.call is not None:
            try:
                await self.call.close("released")
            except Exception:
                logger.exception("%r: close failed", self)
        await self.media.close()


async def ring(
    leg: AgentLeg, account: Account, offer: str, user_info: dict[str, Any], post: Post
) -> None:
    """Apply the phone's offer to the leg's session, then ring the agent from it.

    Raises NotAcceptable (no common codec) or the media/ConnectyCube error that stopped it.
    """
    media = leg.media

    def on_media(name: str, data: dict[str, Any]) -> None:
        if name == "dtmf":
            post(ev.PhoneDtmf(leg, str(data.get("digit", ""))[:1]))
        elif name == "worker_lost":
            post(ev.MediaLost(leg))
        else:
            logger.debug("%r: media event %s ignored", leg, name)

    media.on_event = on_media
    leg.phone_answer = await media.answer_phone(offer)
    call = account.new_call(leg.agent, CallType.AUDIO, user_info, peer=media.peer)
    leg.call = call
    call.on("ringing", lambda: post(ev.AgentRinging(leg)))
    call.on("accepted", lambda user_id: post(ev.AgentAccepted(leg)))
    call.on("rejected", lambda user_id, info: post(ev.AgentRejected(leg, dict(info or {}))))
    call.on("hung_up", lambda user_id, info: post(ev.AgentHungUp(leg, dict(info or {}))))
    call.on("closed", lambda reason: post(ev.AgentClosed(leg, str(reason))))
    call.on("ice_state", lambda state: post(ev.AgentIceState(leg, str(state))))
    await call.start()
