"""The Django side of a bridged call's records: `edge.ports.CallRecords` over the ORM and the board.

Writes are queued and applied in order by one task per call, so the call never waits on the
database (one ORM thread serves every call of the edge). Reads that the call does wait for (the
mapping, the listener's row) go to a pool thread, so they never queue behind other calls' writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from calls.board import send_board
from calls.models import Call, Disposition
from mappings.models import SipMapping

from . import records
from .ports import Finish, Route, SipFacts

logger = logging.getLogger(__name__)

# How long to wait for the AMI listener's row of the same call (found by Linkedid) before the
# edge writes its own; no listener (a PBX without runami) means a row of the edge's own.
LINKEDID_WAIT = 1.5
# An indexed lookup: polling often costs little and the caller hears ringing that much sooner.
LINKEDID_POLL = 0.02

Write = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class CallRecorder:
    def __init__(self, label: str) -> None:
        self.label = label  # for logs: the SIP Call-ID
        self.row: Call | None = None
        self._mapping: SipMapping | None = None
        self._from_header = ""
        self._opened: asyncio.Future[None] | None = None
        self._writes: asyncio.Queue[Write | None] = asyncio.Queue()
        self._writer: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<CallRecorder {self.label}>"

    async def find_route(self, *candidates: str | None) -> Route | None:
        self._mapping = await sync_to_async(records.find_mapping, thread_sensitive=False)(*candidates)
        return records.route_of(self._mapping) if self._mapping is not None else None

    def open(self, route: Route | None, sip: SipFacts) -> None:
        # Opened alongside ringing: the AMI listener usually has written the row by the time our
        # INVITE arrives, but waiting for it must not hold up the caller.
        self._from_header = sip.from_header
        self._opened = asyncio.ensure_future(self._open(sip))
        self._writer = asyncio.ensure_future(self._write_all())

    async def _open(self, sip: SipFacts) -> None:
        try:
            existing = await self._listener_row(sip.linkedid)
            self.row, board = await sync_to_async(records.open_call)(
                self._mapping, existing, sip_call_id=sip.call_id, from_header=sip.from_header, dialed=sip.dialed
            )
        except Exception:
            # The call goes on; the listener's own row (if any) still records it.
            logger.exception("%r: could not open the CDR row", self)
            return
        await send_board(board)

    @staticmethod
    async def _listener_row(linkedid: str | None) -> Call | None:
        """The AMI listener's row for this call, waiting a little: it usually writes it (at
        Newchannel) before our INVITE arrives. Waits here, not in the ORM thread all calls share."""
        if not linkedid:
            return None
        for _ in range(round(LINKEDID_WAIT / LINKEDID_POLL)):
            row = await sync_to_async(records.listener_row, thread_sensitive=False)(linkedid)
            if row is not None:
                return row
            await asyncio.sleep(LINKEDID_POLL)
        return None

    async def caller_number(self) -> str:
        return (self.row.caller_number if self.row else "") or records.caller_of(self._from_header)

    # --- queued writes ----------------------------------------------------------------------

    def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Queue `fn(row, *args, **kwargs)` (a `records` function) for the call's writer."""
        self._writes.put_nowait((fn, args, kwargs))

    async def _write_all(self) -> None:
        if self._opened is not None:
            await asyncio.wait([self._opened])
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

    def event(self, kind: str, **payload: Any) -> None:
        at: datetime = timezone.now()
        self._write(records.event, kind, at, **payload)

    def ringing(self, agents: list[int]) -> None:
        self._write(records.update, agents_ringing=agents, app_state="ringing")

    def answered_by(self, agent: int, session_id: str) -> None:
        self._write(
            records.update, agent_cc_user_id=agent, cc_session_id=session_id, agents_ringing=[], app_state="connected"
        )

    def finish(self, finish: Finish) -> None:
        if finish.answered:
            self._write(records.finish_answered, reason=finish.text, stats=finish.stats)
            return
        ending = finish.reason.ending
        self._write(
            records.finish_unanswered,
            sip_status=ending.sip_status,
            reason=finish.text,
            disposition=Disposition(ending.disposition),
        )

    async def transfer(self, exten: str) -> str:
        # Its own thread: the AMI round trip must not hold up the other calls' ORM writes.
        return await sync_to_async(records.transfer, thread_sensitive=False)(self.row, exten)

    async def flush(self) -> None:
        """Wait for every queued write: the CDR is complete before the call is forgotten."""
        self._writes.put_nowait(None)
        if self._writer is not None:
            await self._writer
