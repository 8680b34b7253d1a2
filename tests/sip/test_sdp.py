"""sip.sdp: parse/serialise and RFC 3264 direction mirroring."""

from __future__ import annotations

import pytest

from sip.sdp import SessionDescription, answer_sdp, audio_offer, mirror_direction

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
