import pytest

from mappings import sipuri


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
    assert sipuri.normalise(text) == "sip:vendas@empresa.com"


def test_it_keeps_non_default_ports_and_sips():
    assert sipuri.normalise("<sips:Ana@Empresa.com:5071>") == "sips:ana@empresa.com:5071"
    assert sipuri.normalise("sips:ana@empresa.com:5061") == "sips:ana@empresa.com"


def test_it_handles_ipv6_hosts():
    uri = sipuri.parse("sip:vendas@[2001:DB8::1]:5070")
    assert (uri.host, uri.port) == ("[2001:db8::1]", 5070)


def test_it_parses_a_uri_without_user():
    assert sipuri.normalise("sip:127.0.0.1:5070") == "sip:127.0.0.1:5070"


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
    with pytest.raises(sipuri.InvalidSipUri):
        sipuri.parse(bad)


def test_it_rejects_non_text():
    with pytest.raises(sipuri.InvalidSipUri):
        sipuri.parse(None)  # type: ignore[arg-type]


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
    assert sipuri.channel_endpoint(channel) == endpoint
