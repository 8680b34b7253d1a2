"""Normalise the ways a SIP address reaches us into one lookup key.

Django-free: the SIP edge and the AMI listener use it too.

A mapping's key is `sip:user@host[:port]`, lower-cased, without display name,
angle brackets, URI parameters or headers. So `sip:vendas@empresa.com`,
`<sip:Vendas@EMPRESA.com>` and `"Vendas" <sip:vendas@empresa.com;user=phone>;tag=1`
are the same key. The user part is folded too: PBX extensions are names that
people type in any case, and two mappings that differ only in case would be a
configuration error, not two departments.
"""

import re
from dataclasses import dataclass

# PJSIP/vendas-00000001, SIP/vendas-0000000a, PJSIP/vendas@ccbridge-00000002 (rare).
_CHANNEL_RE = re.compile(r"^(?:PJSIP|SIP|IAX2|Local)/(?P<name>[^/;@\s]+?)(?:@\S+?)?-[0-9a-fA-F]{8}(?:;\d)?$")
_SCHEME_RE = re.compile(r"^(sips?):", re.IGNORECASE)
_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}


class InvalidSipUri(ValueError):
    """The text is not a SIP URI, a header holding one, or a channel name."""


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str
    host: str
    port: int | None = None

    def __str__(self) -> str:
        port = f":{self.port}" if self.port else ""
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}:{user}{self.host}{port}"


def parse(text: str) -> SipUri:
    """Parse a raw URI or a To/From header value into a normalised `SipUri`."""
    if not isinstance(text, str):
        raise InvalidSipUri(f"expected text, got {type(text).__name__}")
    value = text.strip()
    if "<" in value:
        # name-addr: the URI is between the brackets; what follows are header params.
        start = value.index("<") + 1
        end = value.find(">", start)
        if end < 0:
            raise InvalidSipUri(f"unclosed '<' in {text!r}")
        value = value[start:end].strip()
    else:
        # addr-spec: header params (;tag=...) follow the URI directly and belong to the header.
        value = value.split(";", 1)[0].strip()
    match = _SCHEME_RE.match(value)
    if not match:
        raise InvalidSipUri(f"not a sip: or sips: URI: {text!r}")
    scheme = match.group(1).lower()
    rest = value[match.end() :]
    rest = rest.split("?", 1)[0].split(";", 1)[0]
    user, _, hostport = rest.rpartition("@")
    if not hostport:
        raise InvalidSipUri(f"no host in {text!r}")
    host, port = _split_hostport(hostport, text)
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    if any(c.isspace() for c in user) or not host:
        raise InvalidSipUri(f"malformed SIP URI: {text!r}")
    return SipUri(scheme=scheme, user=user.lower(), host=host.lower(), port=port)


def _split_hostport(hostport: str, original: str) -> tuple[str, int | None]:
    if hostport.startswith("["):  # IPv6 reference
        end = hostport.find("]")
        if end < 0:
            raise InvalidSipUri(f"unclosed IPv6 reference in {original!r}")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidSipUri(f"bad port in {original!r}")
        return host, int(port_text)
    return host, None


def normalise(text: str) -> str:
    """Return the lookup key of a SIP URI or header, e.g. `sip:vendas@empresa.com`."""
    return str(parse(text))


def channel_endpoint(text: str) -> str | None:
    """Return the endpoint of an Asterisk channel name (`PJSIP/vendas-00000001` gives `vendas`)."""
    match = _CHANNEL_RE.match(text.strip())
    return match.group("name").lower() if match else None
