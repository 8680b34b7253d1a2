"""Turn AMI events into `Call`, `CallLeg` and `CallEvent` rows, and board updates.

One tracker per PBX, fed events in order from one thread. Calls are correlated by
Linkedid (one `Call` per Linkedid) and channels by Uniqueid (one `CallLeg` each).
The in-memory index (`calls.open_calls`) is only a cache of open rows: `load()` rebuilds
it from the database and `resync()` reconciles it with Asterisk's live channels after a
(re)connect, so nothing is lost when the link or the listener restarts. Timeline rows go
in batches (`calls.timeline`).
"""

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.utils import timezone

from mappings.services import find_by_sip_uri

from .event_fields import as_int, describe, duration, event_time, iso, phone_number
from .models import CallLeg, CallState, Pbx
from .open_calls import OpenCall, OpenCalls, Publish

__all__ = ["DISCONNECTED_REASON", "CallTracker", "OpenCall", "Publish"]

logger = logging.getLogger(__name__)

DISCONNECTED_REASON = "ended while AMI was disconnected"


class CallTracker(OpenCalls):
    """Apply one PBX's AMI events, in order, to its open calls; reconcile after a reconnect."""

    def __init__(self, pbx: Pbx, publish: Publish | None = None) -> None:
        super().__init__(pbx, publish)
        self.events_seen = 0  # every event fed in, ours or not
        self.events_handled = 0  # events that changed a call
        self.events_skipped = 0  # malformed events, logged and dropped
        # Between begin_resync() and resync(): channels that appeared or hung up while
        # CoreShowChannels was in flight, so the snapshot can't undo what events already did.
        self._appeared: set[str] | None = None
        self._gone: set[str] | None = None

    # --- entry points ---

    def handle(self, event: Mapping[str, str]) -> None:
        """Apply one event. A malformed one is logged and skipped.

        Raises only DatabaseError for an outage (not a bad event): the caller retries it.
        """
        self.events_seen += 1
        name = event.get("Event", "")
        handler = getattr(self, f"_on_{name.lower()}", None)
        if handler is None:
            return
        mark = self.timeline.mark()
        try:
            with transaction.atomic():
                handler(event, event_time(event))
            self.events_handled += 1
        except DatabaseError as exc:
            self.timeline.rollback(mark)  # the event's rows rolled back: so do its timeline entries
            # Rows rolled back but the index may hold half of the event: rebuild it from the
            # database, then let the listener retry the event. An outage is not a bad event;
            # an event the database refuses (IntegrityError, DataError) is.
            if not isinstance(exc, (IntegrityError, DataError)):
                self._reload_after_failure()
                raise
            self._skip(event)
        except Exception:  # a bad event must not stop the listener
            self.timeline.rollback(mark)
            self._skip(event)
        self.timeline.flush_unless_deferred()

    def deferred_events(self) -> AbstractContextManager[None]:
        """Insert the CallEvents of everything applied inside the block in one statement at its end.

        Use inside the caller's transaction: a timeline row per event was one INSERT round trip
        per event, the largest single cost of ingest on PostgreSQL. On an exception nothing is
        written (the transaction is rolling back anyway).
        """
        return self.timeline.deferred()

    def flush_events(self) -> None:
        self.timeline.flush()

    def _skip(self, event: Mapping[str, str]) -> None:
        self.events_skipped += 1
        logger.exception("AMI %s: skipped event %s", self.pbx.name, describe(event))
        self._reload_after_failure()

    def _reload_after_failure(self) -> None:
        try:
            self.load()
        except DatabaseError:
            # The database is away; the listener's retry reloads once it is back.
            logger.warning("AMI %s: could not reload open calls", self.pbx.name, exc_info=True)

    def begin_resync(self) -> None:
        """Mark the moment CoreShowChannels is sent; see `resync`."""
        self._appeared, self._gone = set(), set()

    def resync(
        self,
        channels: list[Mapping[str, str]],
        *,
        lost_at: datetime | None = None,
        reason: str = DISCONNECTED_REASON,
    ) -> dict[str, int]:
        """Reconcile with Asterisk's live channels (CoreShowChannels) after a (re)connect.

        Calls with no live channel ended while we could not see them: they are
        closed with `reason`, at `lost_at` (when the link dropped), the best bound
        we have without Asterisk's CDR. Live channels we don't know are picked up
        as if their Newchannel had arrived.

        Events that arrived after `begin_resync()` are newer than the snapshot: a
        channel created since then is not closed for missing from it, and one that
        hung up since then is not picked up again (it would never see a Hangup).
        """
        now = timezone.now()
        appeared, gone = self._appeared or set(), self._gone or set()
        self._appeared = self._gone = None
        self.load()
        live = {c.get("Uniqueid", ""): c for c in channels if c.get("Uniqueid")}
        closed = picked_up = 0
        end = lost_at or now
        for oc in list(self.calls.values()):
            mark = self.timeline.mark()
            try:
                with transaction.atomic():
                    for uid, leg_pk in list(oc.legs.items()):
                        if uid not in live and uid not in appeared:
                            CallLeg.objects.filter(pk=leg_pk).update(ended_at=end, state="Down")
                            del oc.legs[uid]
                            self.by_uniqueid.pop(uid, None)
                    if not oc.legs:
                        oc.call.end_reason = reason[:200]
                        self._finish(oc, end, extra={"lost_at": iso(lost_at), "resynced_at": iso(now)})
                        closed += 1
            except BaseException:
                self.timeline.rollback(mark)
                raise
        # Callers first (their Uniqueid is the Linkedid): the call takes its number from them.
        for uid, channel in sorted(live.items(), key=lambda item: item[1].get("Linkedid") != item[0]):
            if uid in self.by_uniqueid or uid in gone:
                continue
            mark = self.timeline.mark()
            try:
                with transaction.atomic():
                    self._pick_up(channel, now)
                picked_up += 1
            except Exception:
                self.timeline.rollback(mark)
                logger.exception(
                    "AMI %s: could not pick up live channel %s", self.pbx.name, describe(channel)
                )
                self._reload_after_failure()
        logger.info(
            "AMI %s resync: %d live channels, %d calls closed, %d channels picked up",
            self.pbx.name,
            len(live),
            closed,
            picked_up,
        )
        self.timeline.flush_unless_deferred()
        return {"live": len(live), "closed": closed, "picked_up": picked_up}

    # --- events ---

    def _on_newchannel(self, e: Mapping[str, str], at: datetime) -> None:
        uid, linkedid = e["Uniqueid"], e.get("Linkedid") or e["Uniqueid"]
        if self._appeared is not None:
            self._appeared.add(uid)
        if uid in self.by_uniqueid:
            return  # replayed (resync raced the event)
        oc = self.calls.get(linkedid) or self._open_call(linkedid, e, at)
        self._add_leg(oc, e, at)
        self._record(
            oc,
            "channel.new",
            at,
            channel=e.get("Channel", ""),
            uniqueid=uid,
            caller=phone_number(e.get("CallerIDNum")),
            exten=e.get("Exten", ""),
        )
        self.publish(oc.call, "update")

    def _on_newstate(self, e: Mapping[str, str], at: datetime) -> None:
        oc, leg_pk = self._leg(e)
        if oc is None:
            return
        desc = e.get("ChannelStateDesc", "")
        CallLeg.objects.filter(pk=leg_pk).update(state=desc[:32])
        call = oc.call
        changed: list[str] = []
        if desc in ("Ringing", "Ring") and e["Uniqueid"] != oc.primary and call.ringing_at is None:
            call.ringing_at = at
            changed.append("ringing_at")
        if desc == "Up":
            CallLeg.objects.filter(pk=leg_pk, answered_at__isnull=True).update(answered_at=at)
            if e["Uniqueid"] != oc.primary and call.answered_at is None:
                self._answer(oc, at, changed)
            elif call.answered_at is None and call.state == CallState.RINGING and not oc.dialing:
                # The dialplan answered the caller (IVR, Wait): up, though no one answered yet.
                call.state = CallState.UP
                changed.append("state")
        if changed:
            call.save(update_fields=changed)
            self.publish(call, "update")

    def _on_dialbegin(self, e: Mapping[str, str], at: datetime) -> None:
        oc = self._call_of(e)
        if oc is None:
            return
        call = oc.call
        oc.dialing += 1
        changed: list[str] = []
        if call.ringing_at is None:
            call.ringing_at = at
            changed.append("ringing_at")
        if call.answered_at is None and call.state == CallState.UP:
            call.state = CallState.RINGING  # the dialplan answered, now a phone rings
            changed.append("state")
        if changed:
            call.save(update_fields=changed)
        self._record(oc, "dial.begin", at, dest=e.get("DestChannel", ""), dialstring=e.get("DialString", ""))
        self.publish(call, "update")

    def _on_dialend(self, e: Mapping[str, str], at: datetime) -> None:
        oc = self._call_of(e)
        if oc is None:
            return
        status = e.get("DialStatus", "").upper()
        oc.dial_statuses.append(status)
        oc.dialing = max(0, oc.dialing - 1)
        changed: list[str] = []
        if status == "ANSWER" and oc.call.answered_at is None:
            self._answer(oc, at, changed)
            oc.call.save(update_fields=changed)
        self._record(oc, "dial.end", at, dest=e.get("DestChannel", ""), status=status)
        self.publish(oc.call, "update")

    def _on_bridgeenter(self, e: Mapping[str, str], at: datetime) -> None:
        oc, _ = self._leg(e)
        if oc is not None:
            self._record(
                oc, "bridge.enter", at, channel=e.get("Channel", ""), bridge=e.get("BridgeUniqueid", "")
            )

    def _on_bridgeleave(self, e: Mapping[str, str], at: datetime) -> None:
        oc, _ = self._leg(e)
        if oc is not None:
            self._record(
                oc, "bridge.leave", at, channel=e.get("Channel", ""), bridge=e.get("BridgeUniqueid", "")
            )

    def _on_hold(self, e: Mapping[str, str], at: datetime) -> None:
        self._set_state(e, at, CallState.HELD, "hold")

    def _on_unhold(self, e: Mapping[str, str], at: datetime) -> None:
        self._set_state(e, at, CallState.UP, "unhold")

    def _on_blindtransfer(self, e: Mapping[str, str], at: datetime) -> None:
        oc = self._call_by_prefixed(e, ("Transferer", "Transferee"))
        if oc is None:
            return
        step = {
            "type": "blind",
            "to": e.get("Extension", ""),
            "context": e.get("Context", ""),
            "by": e.get("TransfererChannel", ""),
            "result": e.get("Result", ""),
            "at": iso(at),
        }
        self._transfer(oc, at, step)

    def _on_attendedtransfer(self, e: Mapping[str, str], at: datetime) -> None:
        oc = self._call_by_prefixed(e, ("OrigTransferer", "SecondTransferer", "Transferee"))
        if oc is None:
            return
        to = (
            e.get("SecondTransfererConnectedLineNum")
            or e.get("TransferTargetChannel")
            or e.get("DestApp", "")
        )
        step = {
            "type": "attended",
            "to": to,
            "by": e.get("OrigTransfererChannel", ""),
            "result": e.get("Result", ""),
            "at": iso(at),
        }
        self._transfer(oc, at, step)

    def _on_userevent(self, e: Mapping[str, str], at: datetime) -> None:
        if e.get("UserEvent", "").lower() != "bridgecall":
            return
        oc = self._call_of(e)
        if oc is None:
            return
        uri = e.get("SipUri", "").strip()
        mapping = find_by_sip_uri(uri) if uri else None
        call = oc.call
        call.dialed = uri[:255]
        fields = ["dialed"]
        if mapping is not None:
            call.mapping, call.department = mapping, mapping.department
            fields += ["mapping", "department"]
        call.save(update_fields=fields)
        self._record(oc, "bridgecall", at, sip_uri=uri, mapping=mapping.pk if mapping else None)
        self.publish(call, "update")

    def _on_hangup(self, e: Mapping[str, str], at: datetime) -> None:
        if self._gone is not None:
            self._gone.add(e.get("Uniqueid", ""))
        oc, leg_pk = self._leg(e)
        if oc is None:
            return
        uid = e["Uniqueid"]
        cause = as_int(e.get("Cause"))
        cause_text = e.get("Cause-txt", "")
        CallLeg.objects.filter(pk=leg_pk).update(ended_at=at, hangup_cause=cause, state="Down")
        oc.legs.pop(uid, None)
        self.by_uniqueid.pop(uid, None)
        self._record(
            oc, "channel.hangup", at, channel=e.get("Channel", ""), cause=cause, cause_text=cause_text
        )
        call = oc.call
        if uid == oc.primary or call.hangup_cause is None:
            call.hangup_cause, call.hangup_cause_text = cause, cause_text[:100]
            call.save(update_fields=["hangup_cause", "hangup_cause_text"])
        if not oc.legs:
            self._finish(oc, at)
        else:
            self.publish(call, "update")

    # --- helpers ---

    def _pick_up(self, channel: Mapping[str, str], now: datetime) -> None:
        """Adopt a live channel found by CoreShowChannels."""
        seconds = duration(channel.get("Duration", ""))
        at = now - timedelta(seconds=seconds) if seconds is not None else now
        uid = channel["Uniqueid"]
        linkedid = channel.get("Linkedid") or uid
        # The caller's channel is the one whose Uniqueid is the Linkedid, whichever comes first.
        oc = self.calls.get(linkedid) or self._open_call(linkedid, channel, at, primary=linkedid)
        self._add_leg(oc, channel, at)
        call = oc.call
        if channel.get("ChannelStateDesc") == "Up":
            # Up for at most `seconds`: now is the one answer time we can vouch for.
            CallLeg.objects.filter(pk=oc.legs[uid]).update(answered_at=now)
            changed: list[str] = []
            if uid != oc.primary and call.answered_at is None:
                self._answer(oc, now, changed)
            elif call.answered_at is None and call.state == CallState.RINGING:
                call.state = CallState.UP
                changed.append("state")
            if changed:
                call.save(update_fields=changed)
        self._record(oc, "channel.picked_up", now, channel=channel.get("Channel", ""), uniqueid=uid)
        self.publish(call, "update")

    def _set_state(self, e: Mapping[str, str], at: datetime, state: str, kind: str) -> None:
        oc, _ = self._leg(e)
        if oc is None:
            return
        oc.call.state = state
        oc.call.save(update_fields=["state"])
        self._record(oc, kind, at, channel=e.get("Channel", ""))
        self.publish(oc.call, "update")

    def _transfer(self, oc: OpenCall, at: datetime, step: dict) -> None:
        # BlindTransfer and AttendedTransfer report a finished transfer: the call goes on
        # with its new party. An attended transfer held the transferee while consulting,
        # and no Unhold follows, so an answered call is up again.
        call = oc.call
        call.transfer_chain = [*call.transfer_chain, step]
        fields = ["transfer_chain"]
        if call.answered_at is not None and call.state != CallState.UP:
            call.state = CallState.UP
            fields.append("state")
        call.save(update_fields=fields)
        self._record(oc, f"transfer.{step['type']}", at, **{k: v for k, v in step.items() if k != "at"})
        self.publish(call, "update")
