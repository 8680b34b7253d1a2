"""Parse and serialise SIP messages (RFC 3261 §7, §20, §25), strictly and with limits.

Only what a UDP user agent needs: start lines, ordered headers with compact
forms expanded, Via, CSeq and a Content-Length-checked body; URIs and name-addr
are in ``sip.uri``.
``parse()`` raises ``SipParseError`` (a ``ValueError``) on anything malformed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .uri import (
    Address,
    SipParseError,
    format_hostport,
    format_params,
    parse_params,
    split_hostport,
)

SIP_VERSION = "SIP/2.0"
MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7: marks RFC 3261 branch ids
# Far above any sane SIP-over-UDP datagram (RFC 3261 §18.1.1 wants < MTU-200); bigger is hostile.
MAX_MESSAGE_SIZE = 16 * 1024
MAX_HEADERS = 128
MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5

COMPACT_FORMS = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via",
}
CANONICAL_NAMES = {
    name.lower(): name
    for name in (
        "Accept", "Allow", "Authorization", "Call-ID", "Contact", "Content-Length",
        "Content-Type", "CSeq", "From", "Max-Forwards", "Proxy-Authenticate",
        "Proxy-Authorization", "Record-Route", "Route", "Server", "Supported", "To",
        "User-Agent", "Via", "WWW-Authenticate", "Retry-After", "Require", "Unsupported",
        "Content-Encoding", "Subject", "Allow-Events", "Accept-Encoding", "Accept-Language",
    )
}
REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    513: "Message Too Large", 603: "Decline",
}

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) (.*)$")
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9\-.!%*_+`'~]+) (\S+) SIP/2\.0$")
_VIA = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;\s]+)\s*(.*)$")


def new_branch() -> str:
    """Return a fresh RFC 3261 branch id."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    """Return a fresh From/To tag."""
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    """Return a globally unique Call-ID."""
    return f"{secrets.token_hex(12)}@{host}"


def canonical_name(name: str) -> str:
    """Return the long, conventionally-cased header name."""
    lower = name.strip().lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return CANONICAL_NAMES.get(lower, name.strip())


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes or <...>."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and ch == ",":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    tail = "".join(current).strip()
    if tail:
        parts.append(tail)
    return [p for p in parts if p]


@dataclass
class Via:
    """One Via value (RFC 3261 §20.42)."""

    host: str
    port: int | None = None
    transport: str = "UDP"
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _VIA.match(text.strip())
        if not match:
            raise SipParseError(f"bad Via: {text!r}")
        transport, hostport, params = match.groups()
        host, port = split_hostport(hostport)
        return cls(host, port, transport.upper(), parse_params(params))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return format_hostport(self.host, self.port or 5060)

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {format_hostport(self.host, self.port)}" + format_params(
            self.params
        )


class Headers:
    """Ordered SIP headers with case-insensitive, compact-form-aware lookup."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(k), v) for k, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        key = canonical_name(name).lower()
        for k, v in self._items:
            if k.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name``, comma lists split (for Via, Route, Contact...)."""
        key = canonical_name(name).lower()
        values: list[str] = []
        for k, v in self._items:
            if k.lower() == key:
                values.extend(split_list(v))
        return values

    def get_lines(self, name: str) -> list[str]:
        """Return every ``name`` header unsplit (for WWW-Authenticate and other comma users)."""
        key = canonical_name(name).lower()
        return [v for k, v in self._items if k.lower() == key]

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one value, at the first one's place."""
        key = canonical_name(name).lower()
        for i, (k, _) in enumerate(self._items):
            if k.lower() == key:
                self._items[i] = (canonical_name(name), value)
                self._items = [
                    item for j, item in enumerate(self._items) if j <= i or item[0].lower() != key
                ]
                return
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != key]

    def copy(self) -> Headers:
        return Headers(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)


class SipMessage:
    """What requests and responses share: headers, body and typed accessors."""

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers or Headers()
        self.body = body

    # --- typed accessors (raise SipParseError if the header is missing or bad) ---
    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self._required("CSeq").partition(" ")
        method = method.strip()
        if not number.isdigit() or int(number) > MAX_CSEQ or not _TOKEN.match(method or "?"):
            raise SipParseError(f"bad CSeq: {self.headers.get('CSeq')!r}")
        return int(number), method.upper()

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.get_all("Via")
        if not values:
            raise SipParseError("no Via")
        return Via.parse(values[0])

    @property
    def from_(self) -> Address:
        return Address.parse(self._required("From"))

    @property
    def to(self) -> Address:
        return Address.parse(self._required("To"))

    @property
    def contact(self) -> Address | None:
        values = self.headers.get_all("Contact")
        if not values or values[0] == "*":
            return None
        return Address.parse(values[0])

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def sdp(self) -> str | None:
        """Return the body as text when it is application/sdp, else None."""
        if self.body and self.content_type == "application/sdp":
            return self.body.decode("utf-8", errors="replace")
        return None

    def validate(self) -> None:
        """Check the headers every message needs (RFC 3261 §8.1.1); raise SipParseError."""
        for name in ("Call-ID", "CSeq", "From", "To"):
            self._required(name)
        self.top_via  # noqa: B018 - parse for the error
        self.cseq  # noqa: B018
        self.from_  # noqa: B018
        self.to  # noqa: B018

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None or not value.strip():
            raise SipParseError(f"missing {name}")
        return value.strip()

    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self._start_line()]
        lines += [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


class SipRequest(SipMessage):
    def __init__(self, method: str, uri: str, headers: Headers | None = None,
                 body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.method = method.upper()
        self.uri = uri

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def validate(self) -> None:
        super().validate()
        if self.cseq[1] != self.method:
            raise SipParseError(f"CSeq method {self.cseq[1]} does not match {self.method}")

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri}>"


class SipResponse(SipMessage):
    def __init__(self, status: int, reason: str | None = None, headers: Headers | None = None,
                 body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else REASONS.get(status, "Unknown")

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason}>"


def parse(data: bytes) -> SipRequest | SipResponse:
    """Parse one datagram into a request or response; raise SipParseError."""
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError(f"message of {len(data)} bytes is over {MAX_MESSAGE_SIZE}")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("headers are not UTF-8") from exc
    lines = text.lstrip("\r\n").replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # RFC 3261 §7.3.1 folding
            if not items:
                raise SipParseError("continuation line before any header")
            items[-1] = (items[-1][0], items[-1][1] + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            raise SipParseError(f"bad header line: {line[:80]!r}")
        items.append((name, value.strip()))
        if len(items) > MAX_HEADERS:
            raise SipParseError(f"more than {MAX_HEADERS} headers")
    headers = Headers(items)

    length = headers.get("Content-Length")
    if length is not None:
        if not length.isdigit():
            raise SipParseError(f"bad Content-Length: {length!r}")
        if int(length) > len(body):
            raise SipParseError("body shorter than Content-Length")  # RFC 3261 §18.3
        body = body[: int(length)]

    if match := _STATUS_LINE.match(start):
        return SipResponse(int(match.group(1)), match.group(2), headers, body)
    if match := _REQUEST_LINE.match(start):
        return SipRequest(match.group(1), match.group(2), headers, body)
    raise SipParseError(f"bad start line: {start[:80]!r}")


def make_response(request: SipRequest, status: int, reason: str | None = None,
                  to_tag: str | None = None, body: bytes = b"",
                  content_type: str | None = None) -> SipResponse:
    """Build a response copying Via/From/To/Call-ID/CSeq (RFC 3261 §8.2.6.2).

    Tolerates missing headers so that a 400 can answer a broken request.
    """
    headers = Headers()
    for value in request.headers.get_all("Via"):
        headers.add("Via", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is not None:
            tagged = ";tag=" in value.replace(" ", "").lower()
            if name == "To" and to_tag and status != 100 and not tagged:
                value = f"{value};tag={to_tag}"
            headers.add(name, value)
    if status // 100 == 2 or 180 <= status < 200:
        # Record-Route is copied into dialog-creating responses (RFC 3261 §12.1.1).
        for value in request.headers.get_all("Record-Route"):
            headers.add("Record-Route", value)
    if content_type:
        headers.add("Content-Type", content_type)
    return SipResponse(status, reason, headers, body)
