"""What the edge writes down: the call's CDR row (shared with the AMI listener) and its events.

The module's functions are synchronous ORM code; `CallRecorder` (in `edge.recorder`) runs them
off the call's loop, in order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from calls.board import board_messages
from calls.models import Call, CallEvent, CallState, Direction, Disposition
from calls.numbers import to_e164
from mappings.models import SipMapping
from mappings.services import find_by_sip_uri
from sip.uri import InvalidSipUri, SipUri

from .ports import RingStrategy, Route

Board = list[tuple[str, dict[str, Any]]]


def find_mapping(*candidates: str | None) -> SipMapping | None:
    for value in candidates:
        if value:
            mapping = find_by_sip_uri(value)
            if mapping is not None:
                return mapping
    return None


def route_of(mapping: SipMapping) -> Route:
    """The call machine's plain view of a mapping."""
    return Route(
        key=mapping.pk,
        sip_uri=mapping.sip_uri,
        display_name=mapping.display_name,
        enabled=mapping.enabled,
        agents=tuple(int(a) for a in mapping.agents or ()),
        ring_strategy=RingStrategy(mapping.ring_strategy),
        ring_timeout=float(mapping.ring_timeout),
        prefer_opus=mapping.prefer_opus,
    )


def listener_row(linkedid: str) -> Call | None:
    """The AMI listener's CDR row for this Linkedid, if it has written one yet."""
    return Call.objects.filter(linkedid=linkedid).order_by("-pk").first()


def caller_of(from_header: str) -> str:
    """The caller's number (user part) of a From header; "" when it is not a SIP URI."""
    try:
        return SipUri.from_header(from_header).normalised().user[:64]
    except InvalidSipUri:
        return ""


def open_call(
    mapping: SipMapping | None, existing: Call | None, *, sip_call_id: str, from_header: str, dialed: str
) -> tuple[Call, Board]:
    """Write the edge's fields on the call's CDR row: the listener's (`existing`) or a new one.

    Returns the row and its board messages, which the caller sends from its loop (`send_board`).
    """
    call = existing or Call(direction=Direction.INBOUND, started_at=timezone.now(), state=CallState.RINGING)
    caller = caller_of(from_header)
    fields = ["direction", "sip_call_id"]
    call.direction = Direction.INBOUND
    call.sip_call_id = sip_call_id[:255]
    if not call.caller_number:
        call.caller_number = caller[:64]
        call.caller_e164 = to_e164(caller, settings.PHONE_DEFAULT_REGION)
        fields += ["caller_number", "caller_e164"]
    if mapping is not None:
        call.mapping, call.department = mapping, mapping.department
        call.dialed = mapping.sip_uri
        call.agents_ringing = list(mapping.agents)
        call.app_state = "ringing"
        fields += ["mapping", "department", "dialed", "agents_ringing", "app_state"]
    elif not call.dialed:
        call.dialed = dialed[:255]
        fields.append("dialed")
    # The listener writes the same row meanwhile: save only what is ours.
    call.save(update_fields=fields if existing is not None else None)
    return call, board_messages(call, "update")


def event(call: Call, kind: str, at: datetime | None = None, **payload: Any) -> None:
    """Append a step to the call's timeline; `at` is when it happened (the write may be later)."""
    CallEvent.record(kind, call=call, at=at, **payload)


def update(call: Call, **fields: Any) -> Board:
    """Write the app-leg fields the edge owns; return the board messages to send."""
    for name, value in fields.items():
        setattr(call, name, value)
    Call.objects.filter(pk=call.pk).update(**fields)
    return board_messages(call, "update")


def finish_unanswered(call: Call, *, sip_status: int, reason: str, disposition: str) -> Board:
    """Close a call the edge never answered, unless the AMI listener tracks (and closes) it."""
    fields: dict[str, Any] = {
        "sip_status": sip_status,
        "cc_reject_reason": reason[:100],
        "app_state": "ended",
        "agents_ringing": [],
        "end_reason": reason[:200],  # the edge knows why better than the channel's cause
    }
    return update(call, **fields, **_close_without_listener(call, disposition))


def finish_answered(call: Call, *, reason: str, stats: dict[str, Any] | None) -> Board:
    fields: dict[str, Any] = {"app_state": "ended", "end_reason": reason[:200]}
    fields.update(stats_fields(stats or {}))
    return update(call, **fields, **_close_without_listener(call, Disposition.ANSWERED))


def _close_without_listener(call: Call, disposition: str) -> dict[str, Any]:
    """The closing fields, when no AMI listener tracks this call (the edge's row is the CDR)."""
    if call.pbx_id is not None:
        return {}  # the listener closes it at the last Hangup, with Asterisk's times
    call.finish(disposition=disposition)
    return {
        "state": call.state,
        "ended_at": call.ended_at,
        "disposition": call.disposition,
        "duration_seconds": call.duration_seconds,
        "ring_seconds": call.ring_seconds,
        "talk_seconds": call.talk_seconds,
    }


def transfer(call: Call | None, exten: str) -> str:
    """Blind-transfer the caller to `exten` through the AMI listener; return how (the action).

    The trunk leg (our channel on Asterisk) is the one transferred: BlindTransfer moves the
    party bridged with it, the caller."""
    from django.db import connection

    from calls.ami_service import AmiService, transfer_call

    try:
        if call is None:
            raise ValueError("no CDR row for this call")
        call.refresh_from_db()
        if call.pbx is None:
            raise ValueError("the AMI listener does not track this call")
        leg = call.legs.filter(channel__startswith="PJSIP/ccbridge-", ended_at__isnull=True).last()
        if leg is None:
            raise ValueError("no live trunk channel for this call")
        result = transfer_call(AmiService(call.pbx.name), leg.channel, exten, actor=None, call=call)
        return str((result or {}).get("via", ""))
    finally:
        connection.close()  # run in a throwaway thread: don't leave its connection open


def _loss_percent(leg: dict[str, Any]) -> float | None:
    received, lost = leg.get("packets_received") or 0, leg.get("packets_lost") or 0
    return round(100.0 * lost / (received + lost), 2) if received + lost else None


def stats_fields(stats: dict[str, Any]) -> dict[str, Any]:
    """Map a media session's stats to the CDR's per-leg columns (plain RTP; DTLS-SRTP)."""
    out: dict[str, Any] = {}
    for leg, prefix, encrypted in (("rtp", "sip", False), ("webrtc", "app", True)):
        figures = stats.get(leg) or {}
        if figures:
            out[f"{prefix}_codec"] = (figures.get("codec") or "")[:32]
            out[f"{prefix}_encrypted"] = encrypted
            out[f"{prefix}_packet_loss"] = _loss_percent(figures)
            out[f"{prefix}_jitter_ms"] = figures.get("jitter_ms")
    return {k: v for k, v in out.items() if v is not None}
