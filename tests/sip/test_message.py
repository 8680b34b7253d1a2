"""sip.message: strict parsing, serialising and response building."""

from __future__ import annotations

import pytest

from sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    make_response,
    parse,
    split_list,
)

INVITE = (
    b"INVITE sip:vendas@127.0.0.1:5070 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKabc\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKdef, SIP/2.0/UDP [::1]:5062;branch=z9hG4bKghi\r\n"
    b"f: \"Alice, A\" <sip:1001@127.0.0.1>;tag=abc\r\n"
    b"t: <sip:vendas@127.0.0.1>\r\n"
    b"i: call-1\r\n"
    b"CSeq: 12 INVITE\r\n"
    b"m: <sip:asterisk@127.0.0.1:5060;transport=udp>\r\n"
    b"Subject: folded\r\n line\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n\r\nv=0\r\nextra"
)


def test_it_parses_a_request_with_compact_and_folded_headers() -> None:
    request = parse(INVITE)
    assert isinstance(request, SipRequest)
    assert request.method == "INVITE" and request.uri == "sip:vendas@127.0.0.1:5070"
    assert request.call_id == "call-1" and request.cseq == (12, "INVITE")
    assert [v.branch for v in request.vias] == ["z9hG4bKabc", "z9hG4bKdef", "z9hG4bKghi"]
    assert request.vias[2].host == "::1" and request.vias[2].port == 5062
    assert request.from_.display == "Alice, A" and request.from_.tag == "abc"
    assert request.to.tag is None
    assert request.contact.uri.address == ("127.0.0.1", 5060)
    assert request.headers.get("Subject") == "folded line"
    assert request.body == b"v=0\r"  # trimmed to Content-Length
    request.validate()


def test_it_round_trips_through_bytes() -> None:
    request = parse(INVITE)
    again = parse(bytes(request))
    assert bytes(again) == bytes(request)
    assert again.headers.get("Content-Length") == "4"


def test_it_parses_a_response() -> None:
    response = parse(b"SIP/2.0 180 Ringing\r\nCall-ID: x\r\n\r\n")
    assert isinstance(response, SipResponse) and response.status == 180


@pytest.mark.parametrize("data", [
    b"", b"garbage", b"SIP/2.0 99 Low\r\n\r\n", b"SIP/2.0 700 High\r\n\r\n",
    b"INVITE sip:x SIP/3.0\r\n\r\n", b"INVITE  sip:x SIP/2.0\r\n\r\n",
    b"INVITE sip:x SIP/2.0\r\nno colon\r\n\r\n", b"INVITE sip:x SIP/2.0\r\nBad Name: x\r\n\r\n",
    b"INVITE sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n",
    b"INVITE sip:x SIP/2.0\r\nContent-Length: 10\r\n\r\nshort",
    b"INVITE sip:x SIP/2.0\r\nVia: \xff\r\n\r\n",
    b"OPTIONS sip:x SIP/2.0\r\n" + b"A: b\r\n" * 200 + b"\r\n",
    b"OPTIONS sip:x SIP/2.0\r\n" + b"A: " + b"b" * 20000 + b"\r\n\r\n",
])
def test_it_rejects_malformed_messages(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse(data)


@pytest.mark.parametrize("text", [
    "SIP/2.0/UDP", "SIP/2.0/UDP host:99999", "SIP/2.0/UDP :5060", "HTTP/1.1/UDP host",
])
def test_it_rejects_bad_vias(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


def test_split_list_respects_quotes_and_brackets() -> None:
    assert split_list('"a, b" <sip:x@y;a=1,2>, <sip:z@w>') == ['"a, b" <sip:x@y;a=1,2>',
                                                               "<sip:z@w>"]


def test_make_response_copies_the_dialog_headers_and_adds_the_tag() -> None:
    request = parse(INVITE)
    response = make_response(request, 180, to_tag="t1")
    assert response.headers.get_all("Via") == request.headers.get_all("Via")
    assert response.to.tag == "t1" and response.cseq == (12, "INVITE")
    assert make_response(request, 100, to_tag="t1").to.tag is None  # 100 carries no tag
    assert str(response).startswith("<SipResponse 180 Ringing")


@pytest.mark.parametrize("missing", ["Call-ID", "CSeq", "From", "To", "Via"])
def test_validate_names_the_missing_header(missing: str) -> None:
    request = parse(INVITE)
    request.headers.remove(missing)
    with pytest.raises(SipParseError, match="Via" if missing == "Via" else missing):
        request.validate()
