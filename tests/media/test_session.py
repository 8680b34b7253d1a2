"""MediaSession against a real UDP phone and a real aiortc app peer (DTLS-SRTP) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import threading

import numpy as np
import pytest

from media.rtp import g711
from media.rtp.socket import PortRange
from media.session.session import MediaSession, Mode, SessionConfig, SessionState
from sip.sdp import parse_audio

from .peers import (
    LOOPBACK,
    AppPeer,
    PhoneSim,
    dominant_frequency,
    is_contiguous_run,
    wait_for,
)

PHONE_HZ = 1000.0
APP_HZ = 440.0
FRAMES = 60  # 1.2 s of audio each way


def config(**extra) -> SessionConfig:
    return SessionConfig(rtp_ports=PortRange(30000, 39999), host_addresses=LOOPBACK, **extra)


class Call:
    """A phone, a session and an app, set up the way the edge will: phone first, then the app."""

    def __init__(self, session: MediaSession, phone: PhoneSim, app: AppPeer) -> None:
        self.session = session
        self.phone = phone
        self.app = app

    @classmethod
    async def start(cls, app: AppPeer | None = None, app_offers: bool = False,
                    **extra) -> Call:
        phone = PhoneSim(PHONE_HZ)
        await phone.open()
        session = MediaSession(config(**extra))
        await session.prepare_rtp()
        answer = parse_audio(await session.set_rtp_remote(phone.offer()))
        app = app or AppPeer(APP_HZ)
        if app_offers:
            await app.set_answer(await session.accept_offer(await app.offer()))
        else:
            await session.set_answer(await app.answer(await session.create_offer()))
        phone.start((answer.host, answer.port))
        await wait_for(lambda: session.state == SessionState.CONNECTED)
        return cls(session, phone, app)

    async def flow(self, frames: int = FRAMES) -> None:
        start_app, start_phone = len(self.app.received_payloads), len(self.phone.audio())
        await wait_for(lambda: len(self.app.received_payloads) >= start_app + frames
                       and len(self.phone.audio()) >= start_phone + frames)

    async def close(self) -> None:
        await self.phone.close()
        await self.app.close()
        await self.session.close()


def phone_heard(phone: PhoneSim, codec: str = "PCMU") -> np.ndarray:
    return np.concatenate([g711.decode(codec, p) for p in phone.audio()])[1600:]


async def test_it_passes_g711_through_untouched_both_ways():
    call = await Call.start()
    try:
        await call.flow()
        assert call.session.mode is Mode.PASSTHROUGH
        assert call.session.webrtc_codec == "PCMU"
        # Only the app peer runs aiortc's decoder thread; the session's receiver stopped its own.
        assert [t.name for t in threading.enumerate()].count("audio-decoder") == 1
        # The payload bytes are the phone's and the app's own, in order: nothing was transcoded.
        assert is_contiguous_run(call.app.received_payloads, call.phone.sent_payloads)
        assert is_contiguous_run(call.phone.audio(), call.app.sent_payloads)
        # And they sound right at each end.
        assert dominant_frequency(call.app.heard(), call.app.sample_rate) == pytest.approx(
            PHONE_HZ, abs=10)
        assert dominant_frequency(phone_heard(call.phone), 8000) == pytest.approx(APP_HZ, abs=10)
    finally:
        await call.close()


async def test_the_fast_path_carries_the_stream_and_keeps_rtcp_right():
    call = await Call.start()
    try:
        await call.flow()
        fast = call.session._fast
        # Past DTLS, packets go straight from the ICE socket to the relay and back.
        assert fast.started and fast.errors == 0
        assert fast.received.packets >= FRAMES - 5 and fast.sent.packets >= FRAMES - 5
        assert fast.received.lost == 0
        # aiortc still sends our RTCP sender reports, with the packets the fast path sent.
        reported = 0
        for _ in range(100):
            stats = (await call.app.pc.getStats()).values()
            reported = max((s.packetsSent for s in stats if s.type == "remote-outbound-rtp"),
                           default=0)
            if reported:
                break
            await asyncio.sleep(0.05)
        assert 0 < reported <= fast.sent.packets
    finally:
        await call.close()
    assert not fast.started  # closing hands the stream back before the connection closes


async def test_it_transcodes_to_opus_when_the_mapping_prefers_it():
    call = await Call.start(AppPeer(APP_HZ, encoded=False), prefer_opus=True)
    try:
        await call.flow(75)
        assert call.session.mode is Mode.TRANSCODE
        assert call.session.webrtc_codec == "opus"
        assert call.app.sample_rate == 48000
        assert dominant_frequency(call.app.heard(0.5), 48000) == pytest.approx(PHONE_HZ, abs=10)
        assert dominant_frequency(phone_heard(call.phone), 8000) == pytest.approx(APP_HZ, abs=10)
    finally:
        await call.close()


async def test_it_transcodes_when_the_app_offers_no_g711():
    app = AppPeer(APP_HZ, encoded=False, codecs=("opus",))
    call = await Call.start(app, app_offers=True)
    try:
        await call.flow(75)
        assert call.session.mode is Mode.TRANSCODE
        assert dominant_frequency(call.app.heard(0.5), 48000) == pytest.approx(PHONE_HZ, abs=10)
        assert dominant_frequency(phone_heard(call.phone), 8000) == pytest.approx(APP_HZ, abs=10)
    finally:
        await call.close()


async def test_it_converts_between_mu_law_and_a_law():
    # The app answers the offer and can only do PCMA; the phone talks PCMU.
    app = AppPeer(APP_HZ, encoded=False, codecs=("PCMA",))
    call = await Call.start(app, app_offers=True)
    try:
        await call.flow()
        assert call.session.mode is Mode.CONVERT
        assert call.session.webrtc_codec == "PCMA"
        assert dominant_frequency(call.app.heard(), 8000) == pytest.approx(PHONE_HZ, abs=10)
        assert dominant_frequency(phone_heard(call.phone), 8000) == pytest.approx(APP_HZ, abs=10)
    finally:
        await call.close()


async def test_it_keeps_its_stream_continuous_when_a_reinvite_moves_the_phone():
    call = await Call.start()
    try:
        await call.flow(20)
        before = call.phone.received[-1][0]
        old_port = call.phone.port
        # Asterisk's direct-media re-INVITE: the phone moves, and restarts its own stream.
        call.phone.ssrc ^= 0xFFFF
        call.phone.seq = 7
        new_port = await call.phone.move()
        assert new_port != old_port
        await call.session.set_rtp_remote(call.phone.offer())
        mark = len(call.phone.received)
        await wait_for(lambda: len(call.phone.received) >= mark + 20)
        after = [h for h, _, _, _ in call.phone.received[mark:]]
        assert {h.ssrc for h in after} == {before.ssrc}
        seqs = [before.sequence_number] + [h.sequence_number for h in after]
        assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
        stamps = [before.timestamp] + [h.timestamp for h in after]
        assert all(0 < (b - a) % 2**32 <= 8000 for a, b in itertools.pairwise(stamps))
        # The phone's new SSRC still reaches the app, and the phone's loss count stays sane.
        count = len(call.app.received_payloads)
        await wait_for(lambda: len(call.app.received_payloads) >= count + 20)
        stats = await call.session.get_stats()
        assert stats["rtp"]["packets_lost"] <= 2
    finally:
        await call.close()


async def test_it_stops_media_on_hold_and_resumes():
    call = await Call.start()
    try:
        await call.flow(10)
        answer = parse_audio(await call.session.set_rtp_remote(call.phone.offer("sendonly")))
        assert answer.direction == "recvonly"
        await asyncio.sleep(0.1)  # packets already in flight
        mark = len(call.phone.received)
        count = len(call.app.received_payloads)
        await wait_for(lambda: len(call.app.received_payloads) >= count + 15)
        assert len(call.phone.received) == mark  # we send nothing while the phone holds
        # inactive: nothing reaches the app either.
        await call.session.set_rtp_remote(call.phone.offer("inactive"))
        await asyncio.sleep(0.1)
        count = len(call.app.received_payloads)
        await asyncio.sleep(0.3)
        assert len(call.app.received_payloads) == count
        await call.session.set_rtp_remote(call.phone.offer("sendrecv"))
        await call.flow(10)
    finally:
        await call.close()


async def test_it_reports_phone_dtmf_and_sends_dtmf_to_the_phone():
    digits: list[str] = []
    call = await Call.start()
    call.session.on_dtmf = digits.append
    try:
        await call.flow(5)
        for digit in "1*#":
            await call.phone.send_dtmf(digit)
        await wait_for(lambda: len(digits) == 3)
        assert digits == ["1", "*", "#"]

        await call.session.send_dtmf("90")
        await call.session.wait_dtmf_sent()
        events = [(h, data[h.payload_offset:h.payload_end]) for h, data, _, _ in call.phone.received
                  if h.payload_type == 101]
        codes = [p[0] for _, p in events]
        assert codes[0] == 9 and codes[-1] == 0 and set(codes) == {9, 0}
        ends = [p for _, p in events if p[1] & 0x80]
        assert len(ends) == 6  # three end packets per digit
        assert sum(1 for h, _ in events if h.marker) == 2  # one marker per event
        # DTMF shares our one RTP stream towards the phone.
        assert {h.ssrc for h, _, _, _ in call.phone.received} == {call.session.rtp.stream.ssrc}
        with pytest.raises(ValueError):
            await call.session.send_dtmf("x")
    finally:
        await call.close()


async def test_it_reports_stats_for_both_legs():
    call = await Call.start()
    try:
        await call.flow(25)
        stats = await call.session.get_stats()
        rtp, webrtc = stats["rtp"], stats["webrtc"]
        assert rtp["codec"] == "PCMU" and webrtc["codec"] == "PCMU"
        assert rtp["packets_received"] >= 25
        assert rtp["bytes_received"] == 160 * rtp["packets_received"]
        assert rtp["packets_sent"] >= 25 and rtp["packets_lost"] == 0
        assert 0 <= rtp["jitter_ms"] < 1000
        assert webrtc["packets_sent"] >= 20 and webrtc["packets_received"] >= 20
        assert webrtc["state"] == "connected"
    finally:
        await call.close()


async def test_it_closes_idempotently_and_refuses_use_after_close():
    call = await Call.start()
    await call.close()
    await call.session.close()
    assert call.session.state == SessionState.CLOSED
    with pytest.raises(ConnectionError):
        await call.session.prepare_rtp()


async def test_it_rejects_a_phone_offer_without_a_common_codec():
    session = MediaSession(config())
    try:
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n")
        with pytest.raises(ValueError, match="no common audio codec"):
            await session.set_rtp_remote(sdp)
    finally:
        await session.close()


async def test_it_runs_twenty_sessions_on_one_loop():
    calls = await asyncio.gather(*(Call.start() for _ in range(20)))
    try:
        await asyncio.gather(*(c.flow(25) for c in calls))
        for call in calls:
            assert is_contiguous_run(call.app.received_payloads, call.phone.sent_payloads)
            assert is_contiguous_run(call.phone.audio(), call.app.sent_payloads)
        assert len({c.session.rtp.port for c in calls}) == 20
    finally:
        await asyncio.gather(*(c.close() for c in calls))
