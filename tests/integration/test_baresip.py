"""baresip as a real phone in the Asterisk lab: it registers, auto-answers and records."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.prereq import require
from tests.lab.asterisk import AsteriskLab
from tests.lab.baresip import (
    Baresip,
    BaresipError,
    NetstringReader,
    dominant_frequency,
    netstring,
    read_wav,
    write_tone_wav,
)
from tests.lab.sipp import Sipp, wait_until


def test_it_splits_netstrings_across_reads() -> None:
    reader = NetstringReader()
    data = netstring(b'{"a":1}') + netstring(b"")
    assert reader.feed(data[:4]) == []
    assert reader.feed(data[4:]) == [b'{"a":1}', b""]


@pytest.mark.parametrize("bad", [b"x3:abc,", b"3:abcX", b"99999999999"])
def test_it_rejects_malformed_netstrings(bad: bytes) -> None:
    with pytest.raises(BaresipError, match="netstring"):
        NetstringReader().feed(bad)


def test_it_finds_the_frequency_of_a_written_tone(tmp_path: Path) -> None:
    samples, rate = read_wav(write_tone_wav(tmp_path / "t.wav", seconds=1.0, freq=1000))
    assert rate == 8000
    assert abs(dominant_frequency(samples, rate) - 1000) < 5


def test_it_keeps_the_password_out_of_its_repr() -> None:
    require(shutil.which("baresip") is not None, "baresip (Debian package baresip)")
    phone = Baresip("1003", "very-secret-pw", ("127.0.0.1", 5060))
    try:
        assert "very-secret-pw" not in repr(phone)
    finally:
        phone.cleanup()


@pytest.mark.asterisk
def test_baresip_answers_a_call_and_records_the_callers_tone(
    asterisk_lab: AsteriskLab, sipp: Sipp
) -> None:
    require(shutil.which("baresip") is not None, "baresip (Debian package baresip)")
    registrar = (asterisk_lab.host, asterisk_lab.ports.sip)
    with Baresip("1003", asterisk_lab.phone_password, registrar, answer=True) as phone:
        phone.wait_registered(10)

        # hold_ms spans Asterisk's direct-media re-INVITE, which moves the RTP mid-call.
        result = sipp.call("1001", "1003", hold_ms=3000).wait(20)
        assert result.ok, result.describe() + "\n--- baresip ---\n" + phone.log_tail()

        # sndfile completes the WAV header only when the call's audio stream closes (on BYE).
        def heard() -> tuple[np.ndarray, int] | None:
            for path in phone.recordings("dec"):
                samples, rate = read_wav(path)
                if len(samples) >= rate:
                    return samples, rate
            return None

        assert wait_until(lambda: heard() is not None, timeout=5.0), phone.log_tail()
        recording = heard()
        assert recording is not None
        samples, rate = recording
        # Skip the first 200 ms: the stream may start with silence before media flows.
        tail = samples[rate // 5:]
        assert abs(dominant_frequency(tail, rate) - 1000) < 20
        assert np.sqrt(np.mean(tail**2)) > 0.05
