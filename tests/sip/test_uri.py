"""sip.uri: one SIP URI for the stack (wire form) and for mappings (the normalised lookup key)."""

from __future__ import annotations

import pytest

from sip.message import SipParseError
from sip.uri import Address, InvalidSipUri, SipUri, channel_endpoint, normalise

# The stack: URIs and addresses as written on the wire.


def test_uris_and_addresses_round_trip() -> None:
    uri = SipUri.parse("sip:vendas@empresa.com:5080;transport=udp;lr?subject=x")
    assert (uri.user, uri.host, uri.port, uri.params) == (
        "vendas", "empresa.com", 5080, {"transport": "udp", "lr": None})
    assert str(uri) == "sip:vendas@empresa.com:5080;transport=udp;lr?subject=x"
    address = Address.parse("sip:1001@127.0.0.1;tag=xyz")  # addr-spec: the tag is a header param
    assert address.tag == "xyz" and address.uri.params == {}
    assert str(address.with_tag("new")) == "<sip:1001@127.0.0.1>;tag=new"
    with pytest.raises(SipParseError):
        SipUri.parse("tel:+351210000000")


def test_a_bad_uri_is_a_parse_error_of_the_message_too() -> None:
    # The stack catches SipParseError; mappings catch InvalidSipUri; both are ValueErrors.
    with pytest.raises(InvalidSipUri):
        SipUri.parse("sip:a@b:99999")
    with pytest.raises(SipParseError):
        Address.parse("<sip:1001@127.0.0.1")
    assert issubclass(InvalidSipUri, SipParseError) and issubclass(InvalidSipUri, ValueError)


def test_the_stack_keeps_the_wire_form_and_normalised_gives_the_key() -> None:
    uri = SipUri.from_header('"X" <sip:Vendas@EMPRESA.com:5060;user=phone>;tag=1')
    assert (uri.user, uri.host, uri.port, uri.params) == ("Vendas", "EMPRESA.com", 5060, {"user": "phone"})
    key = uri.normalised()
    assert str(key) == "sip:vendas@empresa.com" and key.user == "vendas"
    assert key == SipUri.from_header("<sip:vendas@empresa.com>").normalised()
    assert SipUri.parse("sip:127.0.0.1").normalised().user == ""  # text, for a CharField and [:64]


def test_a_user_part_may_carry_semicolons() -> None:
    # RFC 3261 §19.1.3: the user part of a bracketed URI runs to the last '@', ';' included.
    key = normalise("<sip:+358-555-1234567;POSTD=pp22@foo.com;user=phone>")
    assert key == "sip:+358-555-1234567;postd=pp22@foo.com"


# Mappings: every form of one address gives one key.


@pytest.mark.parametrize(
    "text",
    [
        "sip:vendas@empresa.com",
        "<sip:Vendas@EMPRESA.com>",
        "  SIP:vendas@empresa.com  ",
        '"Vendas" <sip:vendas@empresa.com>;tag=as5f3e',
        "<sip:vendas@empresa.com;user=phone>",
        "sip:vendas@empresa.com;transport=udp",
        "sip:vendas@empresa.com?subject=hi",
        "sip:vendas@empresa.com:5060",
        "sip:vendas@empresa.com;tag=1",
    ],
)
def test_it_normalises_every_form_to_one_key(text):
    assert normalise(text) == "sip:vendas@empresa.com"


def test_it_keeps_non_default_ports_and_sips():
    assert normalise("<sips:Ana@Empresa.com:5071>") == "sips:ana@empresa.com:5071"
    assert normalise("sips:ana@empresa.com:5061") == "sips:ana@empresa.com"


def test_it_handles_ipv6_hosts():
    # The host is kept without its brackets (a socket address); str() puts them back.
    uri = SipUri.from_header("sip:vendas@[2001:DB8::1]:5070").normalised()
    assert (uri.host, uri.port) == ("2001:db8::1", 5070)
    assert str(uri) == "sip:vendas@[2001:db8::1]:5070"


def test_it_parses_a_uri_without_user():
    assert normalise("sip:127.0.0.1:5070") == "sip:127.0.0.1:5070"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "vendas",
        "http://empresa.com",
        "<sip:vendas@empresa.com",
        "sip:vendas@",
        "sip:a@b:99999",
        "sip:a@b:x",
        "sip:a b@c",
    ],
)
def test_it_rejects_malformed_input_clearly(bad):
    with pytest.raises(InvalidSipUri):
        SipUri.from_header(bad)


def test_it_rejects_non_text():
    with pytest.raises(InvalidSipUri):
        SipUri.from_header(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("channel", "endpoint"),
    [
        ("PJSIP/vendas-00000001", "vendas"),
        ("PJSIP/Vendas-0000a01f", "vendas"),
        ("SIP/1001-0000000a", "1001"),
        ("PJSIP/ccbridge-00000002", "ccbridge"),
        ("Local/vendas@from-phones-00000003;1", "vendas"),
        ("sip:vendas@empresa.com", None),
        ("PJSIP/vendas", None),
    ],
)
def test_it_reads_the_endpoint_of_a_channel_name(channel, endpoint):
    assert channel_endpoint(channel) == endpoint
