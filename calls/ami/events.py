"""Immutable AMI messages: events and action responses.

Headers are kept as plain strings, looked up case-insensitively as
panoramisk does. A header that repeats (``ChanVariable``, ``Variable``) keeps
every value; ``msg[key]`` gives the first one and ``msg.getall(key)`` all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

logger = logging.getLogger(__name__)

# Header values longer than this are cut: a broken peer must not make us
# hold megabytes per event.
MAX_VALUE_LENGTH = 8192


class AmiMessage(Mapping[str, str]):
    """A read-only, case-insensitive mapping of AMI headers."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        pairs = tuple((str(k), str(v)[:MAX_VALUE_LENGTH]) for k, v in items)
        index: dict[str, list[int]] = {}
        for i, (key, _) in enumerate(pairs):
            index.setdefault(key.lower(), []).append(i)
        object.__setattr__(self, "_items", pairs)
        object.__setattr__(self, "_index", index)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __getitem__(self, key: str) -> str:
        positions = self._index.get(key.lower())
        if not positions:
            raise KeyError(key)
        return self._items[positions[0]][1]

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for key, _ in self._items:
            if key.lower() not in seen:
                seen.add(key.lower())
                yield key

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AmiMessage):
            return type(self) is type(other) and self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash((type(self), self._items))

    def getall(self, key: str) -> tuple[str, ...]:
        """Return every value of a header that may repeat."""
        return tuple(self._items[i][1] for i in self._index.get(key.lower(), ()))

    def items_raw(self) -> tuple[tuple[str, str], ...]:
        """Return the headers in wire order, repeats included."""
        return self._items


class AmiEvent(AmiMessage):
    """An AMI event, such as ``Newchannel`` or ``Hangup``."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self["Event"]

    def __repr__(self) -> str:
        ids = " ".join(
            f"{k}={self[k]!r}" for k in ("Channel", "Uniqueid", "Linkedid") if k in self
        )
        return f"<AmiEvent {self.name}{' ' + ids if ids else ''}>"


class AmiResponse(AmiMessage):
    """The response to an action, with the events of list actions."""

    __slots__ = ("_events",)

    def __init__(self, items: Iterable[tuple[str, str]], events: Iterable[AmiEvent] = ()) -> None:
        super().__init__(items)
        object.__setattr__(self, "_events", tuple(events))

    @property
    def events(self) -> tuple[AmiEvent, ...]:
        """Events that belong to this action (list actions, OriginateResponse)."""
        return self._events

    @property
    def response(self) -> str:
        return self.get("Response", "")

    @property
    def message(self) -> str:
        return self.get("Message", "")

    @property
    def success(self) -> bool:
        return self.response in ("Success", "Follows", "Goodbye")

    def __repr__(self) -> str:
        extra = f" +{len(self._events)} events" if self._events else ""
        return f"<AmiResponse {self.response} {self.message!r}{extra}>"


def _pairs(message: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten a panoramisk Message (values may be lists) into header pairs."""
    pairs: list[tuple[str, str]] = []
    for key, value in message.items():
        if not isinstance(key, str):
            raise ValueError(f"header name {key!r} is not a string")
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if not isinstance(item, str):
                raise ValueError(f"header {key!r} has a non-string value {item!r}")
            pairs.append((key.strip(), item.strip()))
    content = getattr(message, "content", "")
    if isinstance(content, str) and content:
        pairs.append(("Output", content))
    return pairs


def event_from_message(message: Mapping[str, Any]) -> AmiEvent:
    """Build an AmiEvent from a parsed message; raise ValueError if malformed."""
    pairs = _pairs(message)
    event = AmiEvent(pairs)
    if len(event.getall("Event")) > 1:
        raise ValueError(f"AMI event with several names {event.getall('Event')!r}")
    name = event.get("Event", "")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"malformed AMI event name {name!r}")
    return event


def response_from_messages(messages: Any) -> AmiResponse:
    """Build an AmiResponse from panoramisk's action result (one or a list)."""
    items = list(messages) if isinstance(messages, list) else [messages]
    if not items:
        raise ValueError("empty AMI response")
    first, rest = items[0], items[1:]
    events = []
    for item in rest:
        try:
            events.append(event_from_message(item))
        except ValueError as exc:
            logger.warning("skipping malformed event in an action result: %s", exc)
    return AmiResponse(_pairs(first), events)
