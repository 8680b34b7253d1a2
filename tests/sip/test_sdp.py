"""sip.sdp: parse/serialise, RFC 3264 direction, and the media worker's codec choice and writer."""

from __future__ import annotations

import pytest

from sip.sdp import (
    G722,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    SdpWriter,
    SessionDescription,
    answer_sdp,
    audio_offer,
    choose_codec,
    mirror_direction,
    parse_audio,
    sdp_direction,
    with_direction,
)

ASTERISK_OFFER = (
    "v=0\r\no=- 1838203934 1838203936 IN IP4 127.0.0.1\r\ns=Asterisk\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 31010 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    "a=ptime:20\r\na=maxptime:150\r\na=sendonly\r\n"
)


def test_it_parses_what_asterisk_offers() -> None:
    sdp = SessionDescription.parse(ASTERISK_OFFER)
    audio = sdp.audio
    assert sdp.connection == "127.0.0.1" and audio.port == 31010
    assert audio.payload_types == [0, 8, 9, 101]
    assert audio.find("PCMA") == 8 and audio.telephone_event == 101
    assert audio.fmtp[101] == "0-16" and audio.ptime == 20
    assert sdp.media_direction(audio) == "sendonly"
    assert "a=maxptime:150" in audio.other


def test_it_round_trips() -> None:
    sdp = SessionDescription.parse(ASTERISK_OFFER)
    assert str(SessionDescription.parse(str(sdp))) == str(sdp)
    assert set(str(sdp).split("\r\n")) == set(ASTERISK_OFFER.split("\r\n"))


@pytest.mark.parametrize(("offer", "answer"), [
    ("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive"),
    ("sendrecv", "sendrecv"),
])
def test_it_mirrors_hold_directions(offer: str, answer: str) -> None:
    assert mirror_direction(offer) == answer


def test_answer_sdp_mirrors_and_bumps_the_version_only_on_change() -> None:
    local = str(audio_offer("127.0.0.1", 30000, session_id=5))
    held = answer_sdp(local, ASTERISK_OFFER)
    assert "a=recvonly" in held and "o=ccbridge 5 2 " in held
    resumed = answer_sdp(held, ASTERISK_OFFER.replace("sendonly", "sendrecv"))
    assert "a=sendrecv" in resumed and "o=ccbridge 5 3 " in resumed
    assert answer_sdp(resumed, ASTERISK_OFFER.replace("sendonly", "sendrecv")) == resumed


@pytest.mark.parametrize("text", [
    "", "o=x\r\n", "v=0\r\nm=audio\r\n", "v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
    "v=0\r\nc=IN IP4\r\n", "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
    "v=0\r\nbad line\r\n",
])
def test_it_rejects_malformed_sdp(text: str) -> None:
    with pytest.raises(ValueError):
        SessionDescription.parse(text)


# sdp_direction and with_direction: the edge's hold and resume.

OURS = (
    "v=0\r\no=ccbridge 42 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 43000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)


def test_sdp_direction_reads_the_first_direction_line() -> None:
    assert sdp_direction(OURS) == "sendrecv"
    assert sdp_direction(ASTERISK_OFFER) == "sendonly"
    assert sdp_direction("v=0\r\na=inactive\r\nm=audio 1 RTP/AVP 0\r\na=sendonly\r\n") == "inactive"
    assert sdp_direction(OURS.replace("\r\n", "\n").replace("sendrecv", "recvonly")) == "recvonly"


@pytest.mark.parametrize("text", ["", None, "v=0\r\n", "v=0\r\na=sendrecvx\r\na=maxptime:150\r\n"])
def test_sdp_direction_defaults_to_sendrecv(text: str | None) -> None:
    assert sdp_direction(text) == "sendrecv"


def test_with_direction_replaces_the_direction_and_bumps_the_version() -> None:
    held = with_direction(OURS, "sendonly")
    assert held == OURS.replace("a=sendrecv", "a=sendonly").replace("42 7 ", "42 8 ")
    assert sdp_direction(held) == "sendonly"
    resumed = with_direction(held, "sendrecv")
    assert resumed == OURS.replace("42 7 ", "42 9 ")


def test_with_direction_replaces_every_direction_line() -> None:
    both = OURS.replace("t=0 0\r\n", "t=0 0\r\na=sendrecv\r\n")
    held = with_direction(both, "inactive")
    assert held.count("a=inactive\r\n") == 2 and "a=sendrecv" not in held


def test_with_direction_appends_a_direction_when_there_is_none() -> None:
    bare = OURS.replace("a=sendrecv\r\n", "")
    held = with_direction(bare, "sendonly")
    assert held == bare.replace("42 7 ", "42 8 ") + "a=sendonly\r\n"


def test_with_direction_writes_crlf_whatever_the_input() -> None:
    lf = OURS.replace("\r\n", "\n")
    assert with_direction(lf, "sendonly") == with_direction(OURS, "sendonly")
    assert "\n" not in with_direction(lf, "sendonly").replace("\r\n", "")


def test_with_direction_leaves_an_origin_without_a_numeric_version() -> None:
    odd = OURS.replace("o=ccbridge 42 7 ", "o=ccbridge 42 x ")
    assert "o=ccbridge 42 x IN IP4 127.0.0.1\r\n" in with_direction(odd, "sendonly")


def test_with_direction_gives_what_the_parser_reads_back() -> None:
    held = SessionDescription.parse(with_direction(str(audio_offer("127.0.0.1", 30000, session_id=5)), "sendonly"))
    assert held.media_direction(held.audio) == "sendonly" and held.origin.split()[2] == "2"


@pytest.mark.parametrize("text", ["", "  \r\n"])
def test_with_direction_rejects_an_empty_sdp(text: str) -> None:
    with pytest.raises(ValueError, match="empty SDP"):
        with_direction(text, "sendonly")


def test_with_direction_rejects_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="unknown SDP direction"):
        with_direction(OURS, "hold")


def test_codecs_write_their_rtpmap() -> None:
    assert PCMU.rtpmap == "a=rtpmap:0 PCMU/8000"
    assert str(Codec("opus", 111, 48000, 2)) == "111 opus/48000/2"
    audio = SessionDescription.parse(ASTERISK_OFFER).audio
    assert audio.codec(0) == PCMU and audio.codec(18) == Codec("G729", 18) and audio.codec(96) is None


# The media worker's reading of the far end's audio (parse_audio, choose_codec) and its writer.

WORKER_OFFER = (
    "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=Asterisk\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 17000 RTP/AVP 8 0 9 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:9 G722/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n"
    "a=ptime:20\r\na=maxptime:150\r\na=sendrecv\r\n"
)


def test_it_reads_an_asterisk_offer():
    audio = parse_audio(WORKER_OFFER)
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
