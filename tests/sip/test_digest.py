"""sip.digest against the RFC 2617 §3.5 worked example and RFC 7616 algorithms."""

from __future__ import annotations

import pytest

from sip.digest import Challenge, Credentials, authorization
from sip.message import SipParseError


def test_it_matches_the_rfc_2617_example() -> None:
    challenge = Challenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    value = authorization(challenge, Credentials("Mufasa", "Circle Of Life"), "GET",
                          "/dir/index.html", cnonce="0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "qop=auth" in value and "nc=00000001" in value
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value


def test_it_answers_without_qop_and_with_sha_256() -> None:
    plain = Challenge.parse('Digest realm="asterisk", nonce="n1"')
    assert "qop" not in authorization(plain, Credentials("u", "p"), "INVITE", "sip:x")
    sha = Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"')
    value = authorization(sha, Credentials("u", "p"), "BYE", "sip:x", cnonce="c")
    assert "algorithm=SHA-256" in value and len(value.split('response="')[1][:64]) == 64


@pytest.mark.parametrize("text", [
    'Basic realm="x"', 'Digest nonce="n"', 'Digest realm="r"', 'Digest realm="r", nonce="n", '
    "algorithm=SHA-512-256-X",
])
def test_it_rejects_challenges_it_cannot_answer(text: str) -> None:
    with pytest.raises(SipParseError):
        Challenge.parse(text)


def test_the_password_stays_out_of_the_repr() -> None:
    assert "hunter2" not in repr(Credentials("bob", "hunter2"))
