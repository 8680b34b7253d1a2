"""The open calls of one PBX: an in-memory index of their rows, and the writes that keep it.

A `Call` per Linkedid and a `CallLeg` per Uniqueid; the index is only a cache of the open
rows, rebuilt by `load()`. `calls.tracker` decides, from AMI events, what happens to them.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from mappings.services import find_by_sip_uri

from .event_fields import phone_number
from .models import Call, CallLeg, CallState, Disposition, Pbx
from .numbers import to_e164
from .timeline import Timeline

Publish = Callable[[Call, str], None]

# Dial statuses (app_dial) and the disposition each suggests when no one answered.
_FAILED_STATUSES = {"CONGESTION", "CHANUNAVAIL", "INVALIDARGS", "DONTCALL", "TORTURE"}
# Q.850 causes that say "busy" or "failed" when no Dial ran (the call ended in the dialplan).
_BUSY_CAUSES = {17}
_FAILED_CAUSES = {1, 3, 27, 34, 38, 41, 42, 44, 58, 88, 102, 111, 127}
FINISH_FIELDS = [
    "answered_at",
    "ringing_at",
    "ended_at",
    "state",
    "disposition",
    "duration_seconds",
    "ring_seconds",
    "talk_seconds",
]


@dataclass
class OpenCall:
    call: Call
    primary: str  # the Uniqueid of the first channel: the caller's
    legs: dict[str, int] = field(default_factory=dict)  # open channels: Uniqueid -> CallLeg pk
    dial_statuses: list[str] = field(default_factory=list)
    dialing: int = 0  # Dials begun and not yet ended


class OpenCalls:
    """The index of a PBX's open calls, the rows behind it, and their timeline."""

    def __init__(self, pbx: Pbx, publish: Publish | None = None) -> None:
        self.pbx = pbx
        self.publish = publish or (lambda call, kind: None)
        self.calls: dict[str, OpenCall] = {}  # Linkedid -> open call
        self.by_uniqueid: dict[str, str] = {}  # Uniqueid -> Linkedid
        self.timeline = Timeline()

    def load(self) -> None:
        """Rebuild the index from the open calls in the database."""
        self.calls.clear()
        self.by_uniqueid.clear()
        for call in Call.objects.filter(pbx=self.pbx).exclude(state=CallState.ENDED):
            legs = {
                leg.uniqueid: leg.pk
                for leg in call.legs.filter(ended_at__isnull=True, uniqueid__isnull=False)
            }
            first = call.legs.order_by("created_at", "pk").first()
            statuses = [
                e.payload.get("status", "") for e in call.events.filter(kind="dial.end").only("payload")
            ]
            begun = call.events.filter(kind="dial.begin").count()
            oc = OpenCall(
                call=call,
                primary=first.uniqueid if first else call.uniqueid,
                legs=legs,
                dial_statuses=statuses,
                dialing=max(0, begun - len(statuses)),
            )
            self.calls[call.linkedid] = oc
            for uid in legs:
                self.by_uniqueid[uid] = call.linkedid

    def _open_call(
        self, linkedid: str, e: Mapping[str, str], at: datetime, primary: str | None = None
    ) -> OpenCall:
        number = phone_number(e.get("CallerIDNum"))
        exten = e.get("Exten", "")
        call, _ = Call.objects.get_or_create(
            pbx=self.pbx,
            linkedid=linkedid,
            defaults={
                "uniqueid": e.get("Uniqueid", linkedid),
                "caller_number": number[:64],
                "caller_e164": to_e164(number, settings.PHONE_DEFAULT_REGION),
                "caller_name": phone_number(e.get("CallerIDName"))[:128],
                "dialed": exten if exten not in ("", "s") else "",
                "started_at": at,
                "sip_channel": e.get("Channel", "")[:128],
                "state": CallState.RINGING,
            },
        )
        if exten and exten != "s" and call.mapping_id is None:
            mapping = find_by_sip_uri(exten)
            if mapping is not None:
                call.mapping, call.department = mapping, mapping.department
                call.save(update_fields=["mapping", "department"])
        oc = OpenCall(call=call, primary=primary or e.get("Uniqueid", linkedid))
        self.calls[linkedid] = oc
        return oc

    def _add_leg(self, oc: OpenCall, e: Mapping[str, str], at: datetime) -> None:
        uid = e["Uniqueid"]
        leg = CallLeg.objects.create(
            call=oc.call,
            uniqueid=uid,
            channel=e.get("Channel", "")[:128],
            state=e.get("ChannelStateDesc", "")[:32],
            caller_number=phone_number(e.get("CallerIDNum"))[:64],
            connected_number=phone_number(e.get("ConnectedLineNum"))[:64],
            created_at=at,
        )
        oc.legs[uid] = leg.pk
        self.by_uniqueid[uid] = oc.call.linkedid

    def _answer(self, oc: OpenCall, at: datetime, changed: list[str]) -> None:
        call = oc.call
        call.answered_at = at
        call.state = CallState.UP
        changed += ["answered_at", "state"]
        if call.ringing_at is None:
            call.ringing_at = call.started_at
            changed.append("ringing_at")

    def _finish(self, oc: OpenCall, at: datetime, extra: dict | None = None) -> None:
        call = oc.call
        if call.answered_at is None and not oc.dial_statuses:
            # No Dial ran, yet the caller's channel was answered: the PBX itself answered
            # (an IVR, voicemail, a parking or Wait extension). Asterisk's CDR says ANSWERED too.
            answered = (
                CallLeg.objects.filter(call=call, uniqueid=oc.primary)
                .values_list("answered_at", flat=True)
                .first()
            )
            if answered is not None:
                self._answer(oc, answered, [])
        call.finish(at=at, disposition=self._disposition(oc))
        # Only our fields: the edge writes the app leg's fields (and its end reason) on the same
        # row; ours goes in only when we have one (a call closed by a resync).
        call.save(update_fields=FINISH_FIELDS + (["end_reason"] if call.end_reason else []))
        self.calls.pop(call.linkedid, None)
        for uid in list(oc.legs):
            self.by_uniqueid.pop(uid, None)
        self._record(
            oc,
            "call.end",
            at,
            disposition=call.disposition,
            cause=call.hangup_cause,
            duration=call.duration_seconds,
            talk=call.talk_seconds,
            reason=call.end_reason,
            **(extra or {}),
        )
        self.publish(call, "end")

    def _disposition(self, oc: OpenCall) -> str:
        call = oc.call
        statuses = set(oc.dial_statuses)
        if call.answered_at is not None or "ANSWER" in statuses:
            return Disposition.ANSWERED
        if "BUSY" in statuses or (not statuses and call.hangup_cause in _BUSY_CAUSES):
            return Disposition.BUSY
        if statuses and statuses <= _FAILED_STATUSES:
            return Disposition.FAILED
        if not statuses and call.hangup_cause in _FAILED_CAUSES:
            return Disposition.FAILED
        return Disposition.NO_ANSWER

    def _record(self, oc: OpenCall, kind: str, at: datetime, **payload: object) -> None:
        self.timeline.record(oc.call, kind, at, payload)

    def _leg(self, e: Mapping[str, str]) -> tuple[OpenCall | None, int | None]:
        uid = e.get("Uniqueid", "")
        linkedid = self.by_uniqueid.get(uid)
        oc = self.calls.get(linkedid) if linkedid else None
        return (oc, oc.legs.get(uid)) if oc else (None, None)

    def _call_of(self, e: Mapping[str, str]) -> OpenCall | None:
        linkedid = e.get("Linkedid") or self.by_uniqueid.get(e.get("Uniqueid", ""), "")
        return self.calls.get(linkedid)

    def _call_by_prefixed(self, e: Mapping[str, str], prefixes: tuple[str, ...]) -> OpenCall | None:
        for prefix in prefixes:
            for key in (f"{prefix}Linkedid", f"{prefix}Uniqueid"):
                value = e.get(key, "")
                oc = self.calls.get(value) or self.calls.get(self.by_uniqueid.get(value, ""))
                if oc is not None:
                    return oc
        return None
