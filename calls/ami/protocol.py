"""panoramisk's protocol and manager, adapted for `AmiClient`: one Manager per connection,
no fire-and-forget pings, bad messages skipped, secrets kept out of the log. Django-free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

# A peer that never sends the blank line ending a message must not grow our buffer forever.
MAX_BUFFERED_CHARS = 1_000_000
REDACTED = "********"


class _RedactingLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Format panoramisk's log lines eagerly and blank out the secret.

    panoramisk logs whole actions in places (``'Fail to send %r' % data`` for
    instance), and the Login action carries the secret.
    """

    def __init__(self, base: logging.Logger, secret: str) -> None:
        super().__init__(base, {})
        self._secret = secret

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args!r}"
        if self._secret:
            text = text.replace(self._secret, REDACTED)
        kwargs.pop("extra", None)
        self.logger.log(level, "%s", text, **kwargs)


class _Protocol(AMIProtocol):
    """panoramisk's protocol, made robust against messages it chokes on."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.queue and len(self.queue[0]) > MAX_BUFFERED_CHARS:
            self.log.warning("AMI peer sent %d chars without a message end; closing",
                             len(self.queue[0]))
            self.queue.clear()
            self.transport.abort()

    def handle_message(self, message: Any) -> None:
        # A repeated Event header makes panoramisk call .lower() on a list;
        # any exception here would otherwise close the link.
        try:
            super().handle_message(message)
        except Exception as exc:  # skip the message, keep the link
            self.log.warning("skipping an AMI message panoramisk could not handle: %r", exc)


class _Manager(Manager):
    """One panoramisk Manager per connection; lifecycle left to AmiClient."""

    def __init__(self, on_lost: Callable[[object], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def ping(self) -> None:
        # AmiClient's watchdog pings and checks the answers.
        pass

    def connection_lost(self, exc: object) -> None:
        self._connected = False
        self._on_lost(exc)
