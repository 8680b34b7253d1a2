"""Play RFC 4733 digits towards the phone on the SIP leg's RTP stream, one digit at a time."""

from __future__ import annotations

import asyncio
import logging

from media.rtp.dtmf import digit_event, event_packets
from media.rtp.socket import RtpEndpoint

logger = logging.getLogger(__name__)

DTMF_STEP = 160  # one telephone-event update per 20 ms at 8 kHz
DTMF_DURATION_MS = 100
DTMF_GAP_MS = 60


class DtmfSender:
    """Queue digits and play them from one task; ``stop()`` cancels it and waits for it to exit.

    While ``playing`` is set the session relays no app audio to the phone: the events replace it.
    """

    def __init__(self, rtp: RtpEndpoint) -> None:
        self.rtp = rtp
        # telephone-event as the phone negotiated it; read per packet, so a re-INVITE applies at once.
        self.payload_type: int | None = None
        self.playing = False
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._duration = DTMF_DURATION_MS * 8
        self._task: asyncio.Task[None] | None = None
        self._exited = asyncio.Event()
        self._exited.set()

    def send(self, digits: str, duration_ms: int = DTMF_DURATION_MS) -> None:
        """Queue digits; raise ValueError for a non-DTMF character or without telephone-event."""
        for digit in digits:
            digit_event(digit)  # validates before anything is queued
        if self.payload_type is None:
            raise ValueError("the phone did not negotiate telephone-event")
        for digit in digits:
            self._queue.put_nowait(digit)
        self._duration = duration_ms * 8
        if self._task is None:
            self._exited.clear()
            self._task = asyncio.ensure_future(self._run())

    async def wait_sent(self) -> None:
        """Return once every queued digit has been sent."""
        await self._queue.join()

    async def stop(self) -> None:
        """Cancel the sender and wait for it to exit; safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            await self._exited.wait()
            self._task = None

    async def _run(self) -> None:
        try:
            while True:
                digit = await self._queue.get()
                try:
                    await self._play(digit)
                finally:
                    self._queue.task_done()
        except asyncio.CancelledError:
            pass
        except Exception:  # we *need* to set the exit event, or stop() hangs
            logger.exception("DtmfSender(%s) failed", id(self))
        finally:
            self.playing = False
            self._exited.set()

    async def _play(self, digit: str) -> None:
        stream = self.rtp.stream
        self.playing = True
        start = stream.advance(0)
        try:
            for event, marker in event_packets(digit, self._duration, DTMF_STEP):
                self.rtp.send(self.payload_type, bytes(event), start, int(marker))
                await asyncio.sleep(DTMF_STEP / 8000)
        finally:
            stream.advance(self._duration)
            stream.resplice()
            self.playing = False
        await asyncio.sleep(DTMF_GAP_MS / 1000)
