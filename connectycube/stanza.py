"""XML helpers for XMPP-over-WebSocket frames (RFC 7395): escaping and single-frame parsing.

Each WebSocket text frame holds one complete XML element, so a plain (non-streaming) parse per
frame is enough. `xml.etree` never fetches external entities, and DOCTYPEs are refused outright
so entity-expansion tricks cannot get in.
"""

from __future__ import annotations

import re
import secrets
import xml.etree.ElementTree as ET

NS_CLIENT = "jabber:client"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_PING = "urn:xmpp:ping"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"

MAX_FRAME = 256 * 1024

_DOCTYPE = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def escape_text(value: str) -> str:
    """Escape text content like ltx (the SDK's XML library): only & < >, CR/LF kept raw."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(value: str) -> str:
    """Escape an attribute value for double quotes."""
    return escape_text(value).replace('"', "&quot;").replace("'", "&apos;")


def qname(ns: str, local: str) -> str:
    """Return the ElementTree name `{ns}local`."""
    return f"{{{ns}}}{local}"


def parse_frame(frame: str, max_size: int = MAX_FRAME) -> ET.Element:
    """Parse one frame into an element; raise ValueError for oversized or malformed XML."""
    if len(frame) > max_size:
        raise ValueError(f"XMPP frame of {len(frame)} characters exceeds {max_size}")
    if _DOCTYPE.search(frame):
        raise ValueError("XMPP frame contains a DOCTYPE or ENTITY declaration")
    try:
        # DOCTYPEs are refused above, so no entity can be declared or expanded.
        return ET.fromstring(frame)  # noqa: S314
    except ET.ParseError as exc:
        raise ValueError(f"malformed XMPP frame: {exc}") from None


def local_name(element: ET.Element) -> str:
    """Return the tag without its namespace."""
    return element.tag.rsplit("}", 1)[-1]


def namespace(element: ET.Element) -> str:
    """Return the element's namespace ('' when none)."""
    return element.tag[1:].split("}", 1)[0] if element.tag.startswith("{") else ""


def new_id() -> str:
    """Return a 24-hex id like the SDK's BSON-ObjectId message ids."""
    return secrets.token_hex(12)


def restore_crlf(text: str) -> str:
    """Undo XML line-end normalisation: SDP needs CRLF and a parser hands back LF."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def bare_jid(jid: str) -> str:
    """Return the JID without its resource."""
    return jid.split("/", 1)[0]


def user_id_from_jid(jid: str) -> int | None:
    """Return the ConnectyCube user id of a `{userId}-{appId}@domain[/res]` JID, or None."""
    local = jid.split("@", 1)[0]
    head = local.split("-", 1)[0]
    return int(head) if head.isdigit() else None
