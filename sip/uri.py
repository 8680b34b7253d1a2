"""SIP URIs and the name-addr around them (RFC 3261 §19.1, §20.10), for the stack and for lookups.

Django-free: the SIP stack sends to these URIs, and mappings, the edge and the AMI listener
compare them. ``SipUri.parse()`` reads one URI as it is on the wire. ``SipUri.from_header()``
also takes a To/From value, and ``normalised()`` gives the form mappings are keyed by:
`sip:user@host[:port]`, lower-cased, without display name, angle brackets, URI parameters,
headers or default port. So `sip:vendas@empresa.com`, `<sip:Vendas@EMPRESA.com>` and
`"Vendas" <sip:vendas@empresa.com;user=phone>;tag=1` are the same key. The user part is folded
too: PBX extensions are names that people type in any case, and two mappings that differ only in
case would be a configuration error, not two departments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
# PJSIP/vendas-00000001, SIP/vendas-0000000a, PJSIP/vendas@ccbridge-00000002 (rare).
_CHANNEL_RE = re.compile(r"^(?:PJSIP|SIP|IAX2|Local)/(?P<name>[^/;@\s]+?)(?:@\S+?)?-[0-9a-fA-F]{8}(?:;\d)?$")


class SipParseError(ValueError):
    """The text is not well-formed SIP (a message, a header or a URI), or it breaks a limit."""


class InvalidSipUri(SipParseError):
    """The text is not a SIP URI, a header holding one, or a channel name."""


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` into an ordered dict (names lower-cased)."""
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        params[name.strip().lower()] = value.strip() if sep else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def split_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets); raise SipParseError on a bad port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"bad IPv6 reference: {text!r}")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"bad host:port: {text!r}")
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise SipParseError(f"empty host in {text!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SipParseError(f"bad port in {text!r}")
    return host, int(port_text)


def format_hostport(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


@dataclass
class SipUri:
    """A sip: or sips: URI (RFC 3261 §19.1); an IPv6 host is kept without its brackets."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse one URI as written on the wire; raise InvalidSipUri (a SipParseError)."""
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in DEFAULT_PORTS:
            raise InvalidSipUri(f"not a sip URI: {text!r}")
        rest, _, headers = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        user = userinfo.partition(":")[0] if at else None
        hostport, _, params = hostpart.partition(";")
        try:
            host, port = split_hostport(hostport)
        except SipParseError as exc:
            raise InvalidSipUri(str(exc)) from None
        return cls(host=host, user=user or None, port=port, scheme=scheme,
                   params=parse_params(params), headers=headers)

    @classmethod
    def from_header(cls, text: str) -> SipUri:
        """Return the URI of a raw URI or a To/From value; raise InvalidSipUri.

        Stricter than ``parse()`` in one way: whitespace in the user part makes no usable key.
        """
        if not isinstance(text, str):
            raise InvalidSipUri(f"expected text, got {type(text).__name__}")
        uri = Address.parse(text).uri
        if uri.user and any(c.isspace() for c in uri.user):
            raise InvalidSipUri(f"malformed SIP URI: {text!r}")
        return uri

    def normalised(self) -> SipUri:
        """Return the comparison form: user and host lower-cased, no params, headers or default port.

        Its user is "" when the URI has none, so that it can be stored and compared as text.
        """
        port = None if self.port == DEFAULT_PORTS.get(self.scheme) else self.port
        return SipUri(host=self.host.lower(), user=(self.user or "").lower(), port=port,
                      scheme=self.scheme)

    @property
    def address(self) -> tuple[str, int]:
        """Return where to send to this URI (no DNS: hosts are used as given)."""
        default = 5061 if self.scheme == "sips" else 5060
        return self.host, self.port or default

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        headers = f"?{self.headers}" if self.headers else ""
        return (f"{self.scheme}:{user}{format_hostport(self.host, self.port)}"
                f"{format_params(self.params)}{headers}")


@dataclass
class Address:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route)."""

    uri: SipUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse a header value; raise InvalidSipUri (a SipParseError)."""
        text = text.strip()
        if "<" in text:
            before, _, rest = text.partition("<")
            inner, closed, after = rest.partition(">")
            if not closed:
                raise InvalidSipUri(f"unclosed '<' in {text!r}")
            display = before.strip().strip('"').strip() or None
            return cls(SipUri.parse(inner), display, parse_params(after))
        # addr-spec: RFC 3261 §20.10, parameters after ';' belong to the header.
        spec, _, params = text.partition(";")
        return cls(SipUri.parse(spec), None, parse_params(params))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> Address:
        return Address(self.uri, self.display, {**self.params, "tag": tag})

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def normalise(text: str) -> str:
    """Return the lookup key of a SIP URI or header, e.g. `sip:vendas@empresa.com`."""
    return str(SipUri.from_header(text).normalised())


def channel_endpoint(text: str) -> str | None:
    """Return the endpoint of an Asterisk channel name (`PJSIP/vendas-00000001` gives `vendas`)."""
    match = _CHANNEL_RE.match(text.strip())
    return match.group("name").lower() if match else None
