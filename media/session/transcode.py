"""G.711/G.722 <-> Opus for calls that cannot pass audio through.

Runs inline on the event loop: at 20 ms per frame an Opus encode costs ~0.1 ms, well under what
a thread hop per frame costs in wake-ups and GIL hand-overs, and it keeps frames in order.
libopus encodes from and decodes to the phone's own sample rate (8 or 16 kHz), so nothing is
resampled (see `opus` for why it is called directly rather than through PyAV).
"""

from __future__ import annotations

import fractions

import av
import numpy as np

from media.rtp import g711

from .opus import OpusDecoder, OpusEncoder

OPUS_CLOCK = 48000
PTIME = 0.02
DEFAULT_OPUS_BITRATE = 24000
# libopus complexity 0-10: 10 (the default) costs ~160 us a frame here, 5 about 130 us.
DEFAULT_OPUS_COMPLEXITY = 5
SAMPLE_RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 16000}


class _PhoneCodec:
    """Decode and encode the phone's codec as int16 mono at its sample rate."""

    def __init__(self, name: str) -> None:
        if name not in SAMPLE_RATES:
            raise ValueError(f"cannot transcode {name}")
        self.name = name
        self.rate = SAMPLE_RATES[name]
        self._decoder = self._encoder = None
        if name == "G722":
            self._decoder = av.CodecContext.create("g722", "r")
            self._decoder.sample_rate = self.rate
            self._decoder.layout = "mono"
            self._encoder = av.CodecContext.create("g722", "w")
            self._encoder.sample_rate = self.rate
            self._encoder.layout = "mono"
            self._encoder.format = "s16"
            self._encoder.time_base = fractions.Fraction(1, self.rate)

    def decode(self, payload: bytes) -> np.ndarray:
        if self._decoder is None:
            return g711.decode(self.name, payload)
        frames = self._decoder.decode(av.Packet(payload))
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)

    def encode(self, samples: np.ndarray) -> bytes:
        if self._encoder is None:
            return g711.encode(self.name, samples)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        return b"".join(bytes(p) for p in self._encoder.encode(frame))


class PhoneToOpus:
    """Turn the phone's payloads into 20 ms Opus packets."""

    def __init__(self, phone_codec: str, bitrate: int = DEFAULT_OPUS_BITRATE,
                 complexity: int = DEFAULT_OPUS_COMPLEXITY) -> None:
        self.codec = _PhoneCodec(phone_codec)
        self.frame = int(self.codec.rate * PTIME)
        self._encoder = OpusEncoder(self.codec.rate, bitrate, complexity)
        self._pending = np.empty(0, dtype=np.int16)

    def feed(self, payload: bytes) -> list[bytes]:
        """Return the Opus packets completed by this payload (usually one per 20 ms payload)."""
        samples = self.codec.decode(payload)
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        packets: list[bytes] = []
        start = 0
        while samples.size - start >= self.frame:
            packets.append(self._encoder.encode(samples[start:start + self.frame]))
            start += self.frame
        self._pending = samples[start:]
        return packets


class OpusToPhone:
    """Turn Opus payloads from the app into the phone's codec, 20 ms per payload."""

    def __init__(self, phone_codec: str) -> None:
        self.codec = _PhoneCodec(phone_codec)
        self.frame = int(self.codec.rate * PTIME)
        # Decoded at the phone's rate by libopus itself: no 48 kHz detour, no resampler.
        self._decoder = OpusDecoder(self.codec.rate)
        self._pending = np.empty(0, dtype=np.int16)

    def feed(self, payload: bytes) -> list[bytes]:
        """Return the phone payloads completed by one Opus packet; raise ValueError if corrupt."""
        if not payload:
            raise ValueError("empty Opus packet")
        samples = self._decoder.decode(payload)
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        payloads = []
        start = 0
        while samples.size - start >= self.frame:
            payloads.append(self.codec.encode(samples[start:start + self.frame]))
            start += self.frame
        self._pending = samples[start:]
        return payloads
