"""Collect AMI events in a test and wait for the ones it expects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from calls.ami import AmiEvent


class EventLog:
    """Collect AMI events and wait for the ones a test expects."""

    def __init__(self) -> None:
        self.events: list[AmiEvent] = []
        self._changed = asyncio.Condition()

    def __call__(self, event: AmiEvent) -> None:
        self.events.append(event)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    async def wait_for(
        self, predicate: Callable[[AmiEvent], bool], within: float = 10.0
    ) -> AmiEvent:
        """Return the first event matching predicate, waiting up to `within` seconds."""
        async def find() -> AmiEvent:
            async with self._changed:
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(find(), within)
        except TimeoutError:
            raise AssertionError(
                f"no matching AMI event within {within}s; saw {sorted(set(self.names()))}"
            ) from None

    async def wait_name(self, name: str, within: float = 10.0, **headers: str) -> AmiEvent:
        def match(event: AmiEvent) -> bool:
            return event.name == name and all(
                event.get(k, "").startswith(v) for k, v in headers.items()
            )

        return await self.wait_for(match, within)
