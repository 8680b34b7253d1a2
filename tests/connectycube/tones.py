"""Audio test helpers: a sine-tone track and a dominant-frequency detector (numpy FFT)."""

from __future__ import annotations

import asyncio
import fractions
import time

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

RATE = 48000
PTIME = 0.02


class ToneTrack(MediaStreamTrack):
    """Send a continuous sine tone, 20 ms per frame, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 0.5) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        samples = int(RATE * PTIME)
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        t = (np.arange(samples) + self._pts) / RATE
        pcm = (self.amplitude * 32767 * np.sin(2 * np.pi * self.frequency * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += samples
        return frame


async def record(track: MediaStreamTrack, seconds: float, skip: float = 0.3) -> np.ndarray:
    """Return `seconds` of mono samples received on `track`, after skipping `skip` seconds."""
    chunks: list[np.ndarray] = []
    got = 0.0
    while got < skip + seconds:
        try:
            frame = await asyncio.wait_for(track.recv(), 5)
        except MediaStreamError:
            break
        data = frame.to_ndarray()
        channels = len(frame.layout.channels)
        mono = data.reshape(-1, channels)[:, 0] if data.ndim == 2 and data.shape[0] == 1 \
            else data[0]
        duration = frame.samples / frame.sample_rate
        if got >= skip:
            chunks.append(mono.astype(np.float64))
        got += duration
    return np.concatenate(chunks) if chunks else np.zeros(0)


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    """Return the frequency (Hz) of the strongest FFT bin."""
    if samples.size == 0:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])
