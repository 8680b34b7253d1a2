"""What a bridged call does while it is talking: DTMF both ways, hold and resume, transfer.

A mixin of `BridgedCall` (`edge.call`), apart so that each feature is found by its file name.
Django-free.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sip.sdp import sdp_direction, with_direction

from . import events as ev
from .ports import BridgeState

if TYPE_CHECKING:
    from .call import BridgedCall

logger = logging.getLogger(__name__)

TRANSFER_TARGET = frozenset("0123456789*#+")


class Talking:
    async def _on_phone_dtmf(self: BridgedCall, event: ev.PhoneDtmf) -> None:
        leg = event.leg
        if self.state is not BridgeState.TALKING or leg is not self.winner or not event.digit:
            return self._ignore(event)
        assert self.account is not None and leg.call is not None
        self.records.event("dtmf.phone", digit=event.digit)
        fields = {"type": "dtmf", "digit": event.digit, "sessionID": leg.call.session_id}
        try:
            await self.account.send_system_message(leg.agent, fields, "dtmf")
        except Exception as exc:
            logger.warning("%r: DTMF to the app failed: %s", self, exc)

    async def _on_app_dtmf(self: BridgedCall, event: ev.AppDtmf) -> None:
        if self.state is not BridgeState.TALKING or self.winner is None:
            return self._ignore(event)
        self.records.event("dtmf.app", digit=event.digit)
        try:
            await self.winner.media.send_dtmf(event.digit)
        except Exception as exc:
            logger.warning("%r: DTMF to the phone failed: %s", self, exc)

    async def _on_app_hold(self: BridgedCall, event: ev.AppHold) -> None:
        """Hold (we only send: Asterisk plays music on hold to the phone) or resume the phone."""
        if self.state is not BridgeState.TALKING or self.dialog is None or not self.dialog.local_sdp:
            return self._ignore(event)
        assert self.winner is not None
        direction = "sendonly" if event.on else "sendrecv"
        try:
            answer = await self.dialog.reinvite(with_direction(self.dialog.local_sdp, direction))
            await self.winner.media.set_hold(direction)
        except Exception as exc:  # SipStatusError, InvalidStateError, MediaError
            logger.warning("%r: %s failed: %s", self, "hold" if event.on else "resume", exc)
            self.records.event("sip.hold_failed", direction=direction, error=str(exc))
            return
        self.records.event(
            "sip.hold" if event.on else "sip.unhold", direction=direction, answer=sdp_direction(answer or "")
        )

    async def _on_app_transfer(self: BridgedCall, event: ev.AppTransfer) -> None:
        """Blind-transfer the caller: Asterisk moves them, then hangs up our leg."""
        if self.state is not BridgeState.TALKING:
            return self._ignore(event)
        try:
            how = await self.records.transfer(event.exten)
        except Exception as exc:  # the AMI listener is down, the channel is gone, ...
            logger.warning("%r: transfer to %s failed: %s", self, event.exten, exc)
            self.records.event("app.transfer_failed", exten=event.exten, error=str(exc))
            return
        self.records.event("app.transfer", exten=event.exten, via=how)

    def app_message(self: BridgedCall, session_id: str, fields: dict[str, str]) -> None:
        """A control message from the agent app (DTMF, hold, resume, transfer) for `session_id`."""
        winner = self.winner
        if winner is None or winner.call is None or winner.call.session_id != session_id:
            return
        kind = fields.get("type")
        if kind == "dtmf" and fields.get("digit"):
            self.post(ev.AppDtmf(fields["digit"][:1]))
        elif kind in ("hold", "unhold"):
            self.post(ev.AppHold(kind == "hold"))
        elif kind == "transfer":
            exten = fields.get("exten", "")
            if 1 <= len(exten) <= 32 and set(exten) <= TRANSFER_TARGET:
                self.post(ev.AppTransfer(exten))
