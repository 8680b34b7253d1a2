"""The SIP leg's UDP endpoint on real loopback sockets (media.rtp.socket)."""

import asyncio
import socket

import pytest

from media.rtp.packet import build_rtp, parse_header
from media.rtp.socket import OutgoingStream, PortRange, PortRangeExhausted, RtpEndpoint, bind_pair

from .peers import wait_for


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


def test_it_binds_an_even_rtp_port_and_the_rtcp_port_above_it_within_range():
    rtp, rtcp = bind_pair("127.0.0.1", PortRange(41000, 41099))
    try:
        port = rtp.getsockname()[1]
        assert port % 2 == 0 and 41000 <= port < 41099
        assert rtcp.getsockname()[1] == port + 1
    finally:
        rtp.close()
        rtcp.close()


def test_it_reports_an_exhausted_range():
    held = [bind_pair("127.0.0.1", PortRange(41200, 41203)) for _ in range(2)]
    try:
        with pytest.raises(PortRangeExhausted):
            bind_pair("127.0.0.1", PortRange(41200, 41203))
    finally:
        for pair in held:
            for s in pair:
                s.close()


def test_it_refuses_a_bad_range():
    with pytest.raises(ValueError):
        PortRange(5000, 100)


async def test_it_latches_onto_the_source_and_keeps_one_stream():
    endpoint = RtpEndpoint("127.0.0.1", PortRange(41300, 41999))
    got = []
    endpoint.on_packet = lambda *args: got.append(args)
    _, port = await endpoint.open()
    phone, nat = udp(), udp()
    try:
        # SDP says one address, packets come from another (NAT): we answer the packets' source.
        endpoint.set_remote("127.0.0.1", 9)
        nat.sendto(build_rtp(0, 0, 1, 160, 42, b"\x7f" * 160), ("127.0.0.1", port))
        await wait_for(lambda: got)
        assert endpoint.remote == nat.getsockname()
        ts = endpoint.stream.advance(160)
        assert endpoint.send(0, b"\xff" * 160, ts)
        first = parse_header(await asyncio.to_thread(nat.recv, 2048))
        assert first.marker == 1
        # A re-INVITE points us elsewhere: same SSRC, next sequence number, no marker reset.
        endpoint.set_remote(*phone.getsockname())
        endpoint.send(0, b"\xff" * 160, endpoint.stream.advance(160))
        second = parse_header(await asyncio.to_thread(phone.recv, 2048))
        assert second.ssrc == first.ssrc
        assert second.sequence_number == (first.sequence_number + 1) % 65536
        assert second.timestamp == (first.timestamp + 160) % 2**32
        # Hold: nothing goes out, nothing is handed on.
        endpoint.set_direction("inactive")
        assert not endpoint.send(0, b"\xff" * 160, 0)
        phone.sendto(build_rtp(0, 0, 2, 320, 42, b"\x7f" * 160), ("127.0.0.1", port))
        await asyncio.sleep(0.05)
        assert len(got) == 1
        # Garbage is counted, never raised.
        endpoint.set_direction("sendrecv")
        phone.sendto(b"\x00garbage", ("127.0.0.1", port))
        await wait_for(lambda: endpoint.errors == 1)
    finally:
        endpoint.close()
        endpoint.close()
        phone.close()
        nat.close()


def test_it_splices_a_new_source_onto_the_timeline():
    stream = OutgoingStream()
    base = stream.next
    assert stream.map(1, 1000, 160) == base
    assert stream.map(1, 1160, 160) == (base + 160) % 2**32
    assert stream.map(1, 1480, 160) == (base + 480) % 2**32  # a gap within a source is kept
    assert stream.map(2, 99, 160) == (base + 640) % 2**32  # a new source continues on
    stream.resplice()
    assert stream.map(2, 5000, 160) == (base + 800) % 2**32
