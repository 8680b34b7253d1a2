"""Read AMI event fields the way the tracker stores them."""

from collections.abc import Mapping
from datetime import UTC, datetime

from django.utils import timezone

_NO_NUMBER = {"", "<unknown>", "unknown", "anonymous"}


def event_time(e: Mapping[str, str]) -> datetime:
    """The event's own time (manager.conf timestampevents=yes), else now."""
    stamp = e.get("Timestamp")
    if stamp:
        try:
            return datetime.fromtimestamp(float(stamp), tz=UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return timezone.now()


def phone_number(value: str | None) -> str:
    text = (value or "").strip()
    return "" if text.lower() in _NO_NUMBER else text


def as_int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def duration(value: str) -> int | None:
    """CoreShowChannel's Duration, HH:MM:SS, in seconds."""
    try:
        h, m, s = (int(p) for p in value.split(":"))
    except ValueError:
        return None
    return h * 3600 + m * 60 + s


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def describe(e: Mapping[str, str]) -> str:
    return " ".join(f"{k}={e.get(k)!r}" for k in ("Event", "Channel", "Uniqueid", "Linkedid") if e.get(k))
