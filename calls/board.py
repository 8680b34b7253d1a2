"""What the live board receives: call snapshots and AMI status, on channel-layer groups.

Groups: `calls.all` (superusers) and `calls.dept.<id>` (a department's operators) carry
call updates; `ami.status` carries the AMI link status. Consumers join them; only
publishers live here.
"""

import logging
import time
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .models import Call

logger = logging.getLogger(__name__)

ALL_GROUP = "calls.all"
STATUS_GROUP = "ami.status"


def department_group(department_id: int) -> str:
    return f"calls.dept.{department_id}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def snapshot(call: Call, channels: list[str] | None = None) -> dict[str, Any]:
    """The board's view of a call: both legs, JSON-ready.

    `ts` orders snapshots of one call: a board that loaded a newer one from the database
    ignores older ones still in flight on the channel layer.
    """
    if channels is None:
        channels = list(
            call.legs.filter(ended_at__isnull=True, kind="asterisk").order_by("created_at", "pk")
            .values_list("channel", flat=True)
        ) if call.pk and not call.ended_at else []
    return {
        "id": call.pk,
        "ts": time.time(),
        "pbx_id": call.pbx_id,
        "channels": channels,
        "state": call.state,
        "direction": call.direction,
        "department_id": call.department_id,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "dialed": call.dialed,
        "sip_channel": call.sip_channel,
        "sip_codec": call.sip_codec,
        "sip_packet_loss": call.sip_packet_loss,
        "sip_jitter_ms": call.sip_jitter_ms,
        "agent": call.agent_cc_user_id,
        "agents_ringing": call.agents_ringing,
        "app_state": call.app_state,
        "app_codec": call.app_codec,
        "started_at": _iso(call.started_at),
        "answered_at": _iso(call.answered_at),
        "ended_at": _iso(call.ended_at),
        "disposition": call.disposition,
    }


def call_messages(call: Call, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """The (group, message) pairs that tell the boards allowed to see a call about it."""
    message = {"type": "call.update", "kind": kind, "call": snapshot(call)}
    groups = [ALL_GROUP] + ([department_group(call.department_id)] if call.department_id else [])
    return [(group, message) for group in groups]


def publish_call(call: Call, kind: str) -> None:
    """Send a call's snapshot to the boards that may see it. Never raises: the CDR comes first.

    For occasional senders (the edge, views). The AMI listener publishes from its own loop
    instead (see `calls.listener`): async_to_sync here opens a Redis connection per call.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group, message in call_messages(call, kind):
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        logger.warning("could not publish call %s to the board", call.pk, exc_info=True)


def board_messages(call: Call, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """`call_messages` that never raises (ORM thread); send them with `send_board` on the loop."""
    try:
        return call_messages(call, kind)
    except Exception:
        logger.warning("could not snapshot call %s for the board", call.pk, exc_info=True)
        return []


async def send_board(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send board messages from an event loop. Never raises: the CDR comes first.

    A loop-side sender (the edge) uses this instead of `publish_call`, whose async_to_sync
    blocks the ORM thread all its calls share for a Redis round trip per message.
    """
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    try:
        for group, message in messages:
            await layer.group_send(group, message)
    except Exception:
        logger.warning("could not publish to the board", exc_info=True)


async def publish_status(status: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(STATUS_GROUP, {"type": "ami.status", "status": status})
    except Exception:
        logger.warning("could not publish the AMI status", exc_info=True)
