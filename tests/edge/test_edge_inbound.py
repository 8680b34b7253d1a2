"""The edge's SDP direction helpers for hold and resume (pure logic)."""

from edge.inbound import sdp_direction, with_direction

OURS = (
    "v=0\r\no=ccbridge 42 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 43000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)


def test_it_puts_the_direction_and_bumps_the_version():
    held = with_direction(OURS, "sendonly")
    assert sdp_direction(held) == "sendonly"
    assert "o=ccbridge 42 8 IN IP4 127.0.0.1\r\n" in held
    assert held.count("a=sendonly") == 1 and "a=sendrecv" not in held
    resumed = with_direction(held, "sendrecv")
    assert sdp_direction(resumed) == "sendrecv" and "o=ccbridge 42 9 " in resumed


def test_it_adds_a_direction_when_the_sdp_has_none():
    bare = OURS.replace("a=sendrecv\r\n", "")
    assert sdp_direction(bare) == "sendrecv"
    assert with_direction(bare, "sendonly").endswith("a=sendonly\r\n")
