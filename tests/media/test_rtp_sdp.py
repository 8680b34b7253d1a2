"""The SIP leg's SDP: parsing the phone's, choosing codecs, writing ours (media.rtp.sdp)."""

import pytest

from media.rtp.sdp import G722, PCMA, PCMU, TELEPHONE_EVENT, SdpWriter, choose_codec, parse_audio

ASTERISK_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=Asterisk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 17000 RTP/AVP 8 0 9 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:9 G722/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n"
    "a=ptime:20\r\na=maxptime:150\r\na=sendrecv\r\n"
)


def test_it_reads_an_asterisk_offer():
    audio = parse_audio(ASTERISK_OFFER)
    assert (audio.host, audio.port, audio.direction, audio.ptime) == ("192.0.2.10", 17000,
                                                                      "sendrecv", 20)
    assert [c.name for c in audio.codecs] == ["PCMA", "PCMU", "G722"]
    assert audio.telephone_event.payload_type == 96
    assert choose_codec(audio) == PCMA


def test_it_uses_static_payload_types_without_rtpmap_and_media_level_address():
    sdp = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
           "m=audio 5004 RTP/AVP 0 18\r\nc=IN IP4 198.51.100.2\r\na=recvonly\r\n")
    audio = parse_audio(sdp)
    assert audio.codecs == [PCMU] and audio.other == [18] and audio.host == "198.51.100.2"
    assert audio.direction == "recvonly" and audio.on_hold
    assert choose_codec(audio, (PCMA, PCMU)) == PCMU


@pytest.mark.parametrize("sdp,message", [
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 96\r\n", "no audio"),
    ("v=0\r\nm=audio 5004 RTP/AVP 0\r\n", "no connection address"),
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n", "malformed m="),
    ("v=0\r\nc=IN IP4 nothost\r\nm=audio 5004 RTP/AVP 0\r\n", "not an IP address"),
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 0\r\na=rtpmap:zero\r\n", "rtpmap"),
    ("garbage", "malformed SDP line"),
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n", "out-of-range"),
])
def test_it_rejects_bad_sdp_clearly(sdp, message):
    with pytest.raises(ValueError, match=message):
        parse_audio(sdp)


def test_it_fails_when_no_codec_is_shared():
    audio = parse_audio("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 18\r\n")
    with pytest.raises(ValueError, match="no common audio codec"):
        choose_codec(audio)


def test_it_writes_an_offer_that_parses_back_and_bumps_its_version():
    writer = SdpWriter("203.0.113.5")
    first = writer.write(20000, [PCMU, PCMA, G722], TELEPHONE_EVENT)
    second = writer.write(20000, [PCMU], TELEPHONE_EVENT, "sendonly")
    audio = parse_audio(first)
    assert (audio.host, audio.port) == ("203.0.113.5", 20000)
    assert [c.name for c in audio.codecs] == ["PCMU", "PCMA", "G722"]
    assert audio.telephone_event == TELEPHONE_EVENT
    assert f"o=ccbridge {writer.session_id} 1 " in first
    assert f"o=ccbridge {writer.session_id} 2 " in second
    assert parse_audio(second).direction == "sendonly"
    assert first.endswith("\r\n") and "\n" not in first.replace("\r\n", "")
