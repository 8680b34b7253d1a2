"""The aiortc internals the passthrough relies on (media.session.hooks).

If an aiortc upgrade moves them, these fail with a message naming what moved.
"""

import subprocess
import sys

import aiortc
import av
import pytest
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from media.session import hooks


def test_it_is_pinned_to_the_aiortc_it_was_written_for():
    assert aiortc.__version__ == hooks.TESTED_AIORTC, (
        "aiortc changed: re-read rtcrtpreceiver.py/rtcrtpsender.py, then update TESTED_AIORTC")


def test_it_finds_every_private_hook():
    hooks.check_hooks.cache_clear()
    hooks.check_hooks()  # raises HookMissing naming the internals that moved


def test_it_fails_loudly_when_a_hook_disappears(monkeypatch):
    # A pure logic check: drop one internal and expect a named failure.
    monkeypatch.delattr(RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder")
    hooks.check_hooks.cache_clear()
    try:
        with pytest.raises(hooks.HookMissing, match="__stop_decoder"):
            hooks.check_hooks()
    finally:
        monkeypatch.undo()
        hooks.check_hooks.cache_clear()


async def test_it_queues_packets_with_pts_and_drops_the_oldest():
    track = hooks.EncodedTrack(8000)
    for i in range(hooks.TRACK_BACKLOG + 2):
        track.push(bytes([i]) * 160, i * 160)
    assert track.dropped == 2
    packet = await track.recv()
    assert isinstance(packet, av.Packet)
    assert bytes(packet)[0] == 2 and packet.pts == 320 and packet.time_base == track.time_base
    track.stop()


def test_the_session_packages_never_import_django():
    code = ("import media.session.session, media.rtp.socket, sys\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'django']\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_fast_path_finds_its_internals_and_names_a_missing_one(monkeypatch):
    from aiortc import RTCRtpSender

    from media.session import fastpath

    fastpath.check_fastpath.cache_clear()
    fastpath.check_fastpath()

    async def moved(self, codec):  # an aiortc whose sender loop no longer counts packets
        pass

    monkeypatch.setattr(RTCRtpSender, "_run_rtp", moved)
    fastpath.check_fastpath.cache_clear()
    try:
        with pytest.raises(hooks.HookMissing, match="__packet_count"):
            fastpath.check_fastpath()
    finally:
        monkeypatch.undo()
        fastpath.check_fastpath.cache_clear()
