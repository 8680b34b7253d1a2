"""G.711 tables and G.711/G.722 <-> Opus (media.rtp.g711, media.session.transcode)."""

import av
import numpy as np
import pytest

from media.rtp import g711
from media.session.transcode import OpusToPhone, PhoneToOpus

from .peers import dominant_frequency, tone


@pytest.mark.parametrize("codec,ffmpeg", [("PCMU", "pcm_mulaw"), ("PCMA", "pcm_alaw")])
def test_it_decodes_exactly_like_ffmpeg(codec, ffmpeg):
    context = av.CodecContext.create(ffmpeg, "r")
    context.sample_rate = 8000
    context.layout = "mono"
    every_byte = bytes(range(256))
    reference = np.concatenate([f.to_ndarray().reshape(-1)
                                for f in context.decode(av.Packet(every_byte))])
    assert np.array_equal(g711.decode(codec, every_byte), reference)
    # Encoding what we decoded gives the bytes back (except mu-law's negative zero).
    again = g711.encode(codec, g711.decode(codec, every_byte))
    assert sum(a != b for a, b in zip(again, every_byte, strict=True)) <= 1


def test_it_converts_between_laws_within_one_quantisation_step():
    pcm = tone(1000, 0, 160)
    alaw = g711.convert("PCMU", "PCMA", g711.encode("PCMU", pcm))
    error = np.abs(g711.decode("PCMA", alaw).astype(int) - pcm.astype(int))
    assert error.max() < 0.04 * 16384
    assert g711.convert("PCMU", "PCMU", b"abc") == b"abc"


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722"])
def test_it_round_trips_a_tone_through_opus(codec):
    rate = 16000 if codec == "G722" else 8000
    frame = rate // 50
    encode, decode = PhoneToOpus(codec), OpusToPhone(codec)
    helper = PhoneToOpus(codec).codec  # the phone's own encoder, to make its payloads
    phone_out = []
    for i in range(100):
        payload = helper.encode(tone(700, i * frame, frame, rate))
        for packet in encode.feed(payload):
            phone_out += decode.feed(bytes(packet))
    assert len(phone_out) >= 95
    samples = np.concatenate([decode.codec.decode(p) for p in phone_out])[rate // 2:]
    assert dominant_frequency(samples, rate) == pytest.approx(700, abs=10)


def test_it_rejects_a_corrupt_opus_packet_cleanly():
    decoder = OpusToPhone("PCMU")
    for bad in (b"\xff\xff\xff", b""):
        with pytest.raises(ValueError):
            decoder.feed(bad)
    encoder = PhoneToOpus("PCMU")
    packets = encoder.feed(g711.encode("PCMU", tone(500, 0, 160)))
    assert len(packets) == 1 and isinstance(packets[0], bytes)
    # The decoder is still usable: the next packet gives 20 ms of mu-law.
    assert [len(p) for p in decoder.feed(packets[0])] == [160]


def test_libopus_codes_at_the_phone_rate_without_a_resampler():
    from media.session.opus import OpusDecoder, OpusEncoder, OpusError

    encoder, decoder = OpusEncoder(16000, 24000, 5), OpusDecoder(16000)
    out = [decoder.decode(encoder.encode(tone(900, i * 320, 320, 16000))) for i in range(50)]
    assert {len(x) for x in out} == {320}
    assert dominant_frequency(np.concatenate(out)[8000:], 16000) == pytest.approx(900, abs=10)
    with pytest.raises(OpusError, match="opus_encoder_create"):
        OpusEncoder(11025, 24000, 5)
