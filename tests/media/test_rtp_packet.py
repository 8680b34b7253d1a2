"""RTP header parsing and building (media.rtp.packet), checked against aiortc's full parser."""

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap

from media.rtp.packet import RtpPacket, build_rtp, parse_header


def test_it_round_trips_a_packet_through_aiortc():
    data = build_rtp(0, 1, 65535, 2**32 - 1, 0xDEADBEEF, b"\xff" * 160)
    packet = RtpPacket.parse(data)
    assert (packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp,
            packet.ssrc, packet.payload) == (0, 1, 65535, 2**32 - 1, 0xDEADBEEF, b"\xff" * 160)
    assert bytes(packet.serialize()) == data


def test_it_skips_csrcs_extensions_and_padding():
    packet = RtpPacket(payload_type=8, sequence_number=5, timestamp=9, ssrc=7, payload=b"abc")
    packet.csrc = [1, 2]
    packet.extensions.mid = "0"
    extensions = HeaderExtensionsMap()
    extensions.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")]))
    data = packet.serialize(extensions) + b"\x00\x00\x03"
    data = bytes([data[0] | 0x20]) + data[1:]
    header = parse_header(data)
    assert (header.payload_type, header.sequence_number, header.timestamp, header.ssrc) == (
        8, 5, 9, 7)
    assert data[header.payload_offset:header.payload_end] == b"abc"


@pytest.mark.parametrize("data", [
    b"", b"\x80\x00", bytes(12),  # short, then version 0
    bytes([0x81]) + bytes(11),  # one CSRC announced, none present
    bytes([0x90]) + bytes(11),  # extension announced, none present
    bytes([0xA0]) + bytes(11) + b"\x00",  # zero padding length
])
def test_it_rejects_malformed_packets_with_value_error(data):
    with pytest.raises(ValueError):
        parse_header(data)


def test_it_accepts_an_empty_payload():
    header = parse_header(b"\x80\x00" + bytes(10))
    assert header.payload_offset == header.payload_end == 12
