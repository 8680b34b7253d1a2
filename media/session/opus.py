"""libopus through ctypes: encode and decode at the phone's own sample rate, with no resampler.

PyAV's libopus wrapper always decodes at 48 kHz (FFmpeg pins the decoder's rate), so every frame
towards an 8 kHz phone was decoded at six times the rate it needed and then resampled, and each
frame in or out built and converted `av.AudioFrame`s. libopus itself decodes natively at 8, 12,
16, 24 or 48 kHz and encodes from those rates too; calling it directly made transcoding cost
markedly less per call (bench/media_capacity.py). The library is the one PyAV's wheel bundles,
so no system package is needed and the version is pinned with `av`.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os

import av
import numpy as np

OPUS_APPLICATION_VOIP = 2048
OPUS_SET_BITRATE_REQUEST = 4002
OPUS_SET_COMPLEXITY_REQUEST = 4010
OPUS_OK = 0
MAX_PACKET = 1500
MAX_FRAME_48K = 5760  # 120 ms at 48 kHz: the longest Opus frame


class OpusError(ValueError):
    pass


@functools.cache
def _lib() -> ctypes.CDLL:
    # av's wheel names it libopus-<hash>.so.<version>; a source build of av links the system one.
    libs = glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "libopus*.so*"))
    lib = ctypes.CDLL(sorted(libs)[0] if libs else "libopus.so.0")
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int,
                                        ctypes.POINTER(ctypes.c_int)]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_encode.restype = ctypes.c_int32
    lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                ctypes.c_int32]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decode.restype = ctypes.c_int
    lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p,
                                ctypes.c_int, ctypes.c_int]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [ctypes.c_int]
    return lib


def _error(code: int) -> str:
    return _lib().opus_strerror(code).decode()


class OpusEncoder:
    """Mono 16-bit PCM at `rate` (8000-48000) to Opus packets."""

    def __init__(self, rate: int, bitrate: int, complexity: int) -> None:
        lib = _lib()
        error = ctypes.c_int()
        self._state = lib.opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, ctypes.byref(error))
        if error.value != OPUS_OK:
            raise OpusError(f"opus_encoder_create: {_error(error.value)}")
        # opus_encoder_ctl is variadic: pass the value as a plain C int.
        for request, value in ((OPUS_SET_BITRATE_REQUEST, bitrate),
                               (OPUS_SET_COMPLEXITY_REQUEST, complexity)):
            code = lib.opus_encoder_ctl(ctypes.c_void_p(self._state), request, ctypes.c_int(value))
            if code != OPUS_OK:
                raise OpusError(f"opus_encoder_ctl({request}, {value}): {_error(code)}")
        self._out = ctypes.create_string_buffer(MAX_PACKET)

    def encode(self, samples: np.ndarray) -> bytes:
        """Encode one frame (2.5-60 ms of int16 samples)."""
        pcm = np.ascontiguousarray(samples, dtype=np.int16)
        size = _lib().opus_encode(self._state, pcm.ctypes.data, pcm.size, self._out, MAX_PACKET)
        if size < 0:
            raise OpusError(f"opus_encode: {_error(size)}")
        return self._out.raw[:size]

    def __del__(self) -> None:
        if getattr(self, "_state", None):
            _lib().opus_encoder_destroy(self._state)
            self._state = None


class OpusDecoder:
    """Opus packets to mono 16-bit PCM at `rate` (8000, 12000, 16000, 24000 or 48000)."""

    def __init__(self, rate: int) -> None:
        error = ctypes.c_int()
        self._state = _lib().opus_decoder_create(rate, 1, ctypes.byref(error))
        if error.value != OPUS_OK:
            raise OpusError(f"opus_decoder_create: {_error(error.value)}")
        self._max = MAX_FRAME_48K * rate // 48000
        self._pcm = np.empty(self._max, dtype=np.int16)

    def decode(self, packet: bytes) -> np.ndarray:
        """Decode one packet; raise OpusError for a corrupt one. The array is a fresh copy."""
        count = _lib().opus_decode(self._state, packet, len(packet), self._pcm.ctypes.data,
                                   self._max, 0)
        if count < 0:
            raise OpusError(f"opus_decode: {_error(count)}")
        return self._pcm[:count].copy()

    def __del__(self) -> None:
        if getattr(self, "_state", None):
            _lib().opus_decoder_destroy(self._state)
            self._state = None
