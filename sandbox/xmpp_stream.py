"""Server side of one XMPP-over-WebSocket stream (RFC 7395), as the ConnectyCube SDK expects it.

Django-free: the Channels consumer wraps it, and tests can drive it alone. It follows the
handshake of protocol doc section 4.4 and the routing rules of section 7: stamp `from`, forward the
raw frame (so CR/LF inside `<sdp>` survive), fan bare-JID messages out to every resource, never add
`<delay>`. Bad input ends the stream with a stream error; it never raises out of `receive()`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import logging
import re
import secrets
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from connectycube.stanza import (
    MAX_FRAME,
    NS_BIND,
    NS_CARBONS,
    NS_CLIENT,
    NS_FORWARD,
    NS_FRAMING,
    NS_PING,
    NS_SASL,
    NS_STANZAS,
    NS_STREAMS,
    bare_jid,
    escape_attr,
    escape_text,
    local_name,
    namespace,
    parse_frame,
    qname,
)

logger = logging.getLogger(__name__)

NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
MAX_AUTH_FAILURES = 3
# IQ namespaces answered with an empty result: what the SDK may send to the server (section 4.4).
SERVER_IQ_NAMESPACES = (
    NS_SESSION,
    "http://tigase.org/protocol/mobile#v2",
    "https://connectycube.com/protocol/status_streaming",
)

_ROOT_TAG = re.compile(r"""^(\s*<[^\s/>]+)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)(\s*/?>)""", re.S)
_FROM_ATTR = re.compile(r"""\s+from\s*=\s*(?:"[^"]*"|'[^']*')""")


class Authenticator(Protocol):
    async def authenticate(self, user_id: int, app_id: int, secret: str) -> str | None:
        """Return the app's JID domain if `secret` is the user's password or a valid session
        token of that user, else None."""


class Router(Protocol):
    async def bind(self, stream: XmppStream) -> None:
        """Start delivering to `stream.jid` and its bare JID."""

    async def unbind(self, stream: XmppStream) -> None:
        """Stop delivering to the stream."""

    async def route(self, stream: XmppStream, to: str, frame: str, carbon: str | None) -> None:
        """Deliver `frame` to `to` (full JID: that resource; bare JID: every resource).

        With `carbon` (the message type), also offer the frame to the sender's other resources
        through their `deliver_carbon`.
        """


class StreamState(enum.Enum):
    OPENING = "opening"  # waiting for <open/>
    AUTHENTICATING = "authenticating"
    AUTHENTICATED = "authenticated"  # waiting for the restarted <open/>
    BINDING = "binding"
    BOUND = "bound"
    CLOSED = "closed"


@dataclass
class StreamIdentity:
    user_id: int
    app_id: int


def set_from(frame: str, jid: str) -> str:
    """Return the frame with its root element's `from` attribute set to `jid`, all else verbatim."""
    match = _ROOT_TAG.match(frame)
    if match is None:
        raise ValueError("cannot find the root start tag")
    attrs = _FROM_ATTR.sub("", match.group(2))
    return f'{match.group(1)} from="{escape_attr(jid)}"{attrs}{match.group(3)}{frame[match.end() :]}'


def parse_plain(payload: str) -> tuple[int, int, str]:
    """Decode a SASL PLAIN payload into (user_id, app_id, secret); raise ValueError if malformed."""
    try:
        decoded = base64.b64decode(payload.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("PLAIN payload is not base64 UTF-8") from None
    parts = decoded.split("\0")
    if len(parts) != 3:
        raise ValueError("PLAIN payload needs authzid, authcid and password")
    _authzid, authcid, secret = parts
    local = authcid.split("@", 1)[0]  # sometimes a full JID (QuickBlox heritage)
    user, _, app = local.partition("-")
    if not (user.isdigit() and app.isdigit()):
        raise ValueError("PLAIN authcid is not {userId}-{appId}")
    return int(user), int(app), secret


class XmppStream:
    """One client stream: the handshake, server-side IQs and routing decisions."""

    def __init__(
        self,
        domain: str,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
        authenticator: Authenticator,
        router: Router,
        *,
        max_frame: int = MAX_FRAME,
    ) -> None:
        self.domain = domain
        self._send = send
        self._close = close
        self._authenticator = authenticator
        self._router = router
        self.max_frame = max_frame
        self.state = StreamState.OPENING
        self.identity: StreamIdentity | None = None
        self.jid: str | None = None
        self.carbons = False
        self._auth_failures = 0

    def __repr__(self) -> str:
        return f"<XmppStream {self.jid or '-'} {self.state.value}>"

    @property
    def bare(self) -> str | None:
        return bare_jid(self.jid) if self.jid else None

    def _set_state(self, state: StreamState) -> None:
        logger.debug("stream %s - %s -> %s", self.jid, self.state.name, state.name)
        self.state = state

    # -- input --------------------------------------------------------------------------------

    async def receive(self, frame: str) -> None:
        """Handle one text frame from the client."""
        if self.state == StreamState.CLOSED:
            return
        if len(frame) > self.max_frame:
            await self.stream_error("policy-violation", f"frame larger than {self.max_frame}")
            return
        try:
            element = parse_frame(frame, self.max_frame)
        except ValueError as exc:
            await self.stream_error("not-well-formed", str(exc))
            return
        try:
            await self._handle(element, frame)
        except ValueError as exc:
            await self.stream_error("bad-format", str(exc))
        except Exception:
            logger.exception("stream %s failed on a frame", self.jid)
            await self.stream_error("internal-server-error", "")

    async def _handle(self, element: ET.Element, frame: str) -> None:
        if element.tag == qname(NS_FRAMING, "open"):
            await self._on_open()
        elif element.tag == qname(NS_FRAMING, "close"):
            await self._send_quiet(f'<close xmlns="{NS_FRAMING}"/>')
            await self.disconnected()
            await self._close()
        elif self.state == StreamState.AUTHENTICATING and element.tag == qname(NS_SASL, "auth"):
            await self._on_auth(element)
        elif self.state == StreamState.BINDING and local_name(element) == "iq":
            await self._on_bind(element)
        elif self.state == StreamState.BOUND:
            await self._on_stanza(element, frame)
        else:
            await self.stream_error("not-authorized", f"unexpected {local_name(element)}")

    async def _on_open(self) -> None:
        if self.state == StreamState.OPENING:
            self._set_state(StreamState.AUTHENTICATING)
            features = f'<mechanisms xmlns="{NS_SASL}"><mechanism>PLAIN</mechanism></mechanisms>'
        elif self.state == StreamState.AUTHENTICATED:
            self._set_state(StreamState.BINDING)
            features = f'<bind xmlns="{NS_BIND}"/>'
        else:
            await self.stream_error("conflict", "stream restart out of order")
            return
        await self._send(
            f'<open xmlns="{NS_FRAMING}" from="{escape_attr(self.domain)}" id="{uuid.uuid4()}"'
            ' version="1.0" xml:lang="en"/>'
        )
        await self._send(f'<stream:features xmlns:stream="{NS_STREAMS}">{features}</stream:features>')

    async def _on_auth(self, auth: ET.Element) -> None:
        if auth.get("mechanism") != "PLAIN":
            await self._send(f'<failure xmlns="{NS_SASL}"><invalid-mechanism/></failure>')
            return
        domain: str | None = None
        try:
            user_id, app_id, secret = parse_plain(auth.text or "")
            domain = await self._authenticator.authenticate(user_id, app_id, secret)
        except ValueError:
            pass
        if domain is None:
            self._auth_failures += 1
            logger.info("stream: SASL PLAIN refused (%d)", self._auth_failures)
            await self._send(f'<failure xmlns="{NS_SASL}"><not-authorized/></failure>')
            if self._auth_failures >= MAX_AUTH_FAILURES:
                await self.stream_error("policy-violation", "too many authentication failures")
            return
        self.identity = StreamIdentity(user_id, app_id)
        self.domain = domain  # JIDs use the app's configured chat domain
        self._set_state(StreamState.AUTHENTICATED)
        await self._send(f'<success xmlns="{NS_SASL}"/>')

    async def _on_bind(self, iq: ET.Element) -> None:
        bind = iq.find(qname(NS_BIND, "bind"))
        if bind is None or iq.get("type") != "set":
            await self.stream_error("not-authorized", "bind expected")
            return
        assert self.identity is not None
        requested = (bind.findtext(qname(NS_BIND, "resource")) or "").strip()
        resource = re.sub(r"[^A-Za-z0-9_.-]", "", requested)[:64] or secrets.token_hex(6)
        self.jid = f"{self.identity.user_id}-{self.identity.app_id}@{self.domain}/{resource}"
        self._set_state(StreamState.BOUND)
        await self._router.bind(self)
        jid = escape_attr(self.jid)
        await self._send(
            f'<iq xmlns="{NS_CLIENT}" type="result" id="{escape_attr(iq.get("id", ""))}" to="{jid}">'
            f'<bind xmlns="{NS_BIND}"><jid>{escape_text(self.jid)}</jid></bind></iq>'
        )

    async def _on_stanza(self, element: ET.Element, frame: str) -> None:
        assert self.jid is not None and self.bare is not None
        kind = local_name(element)
        if namespace(element) not in (NS_CLIENT, ""):
            # Stream management and other non-stanza elements are not supported.
            await self.stream_error("unsupported-stanza-type", element.tag)
            return
        to = element.get("to")
        if kind == "iq":
            if to and bare_jid(to) not in (self.domain, self.bare):
                await self._router.route(self, to, set_from(frame, self.jid), None)
            else:
                await self._on_server_iq(element)
        elif kind == "message":
            if not to:
                return
            stamped = set_from(frame, self.jid)
            kind = element.get("type", "normal")
            carbon = kind if kind in ("chat", "headline") and bare_jid(to) != self.bare else None
            await self._router.route(self, to, stamped, carbon)
        elif kind == "presence":
            if not to and element.get("type") in (None, "available"):
                await self._send(
                    f'<presence xmlns="{NS_CLIENT}" from="{escape_attr(self.jid)}"'
                    f' to="{escape_attr(self.bare)}"/>'
                )
        else:
            await self.stream_error("unsupported-stanza-type", kind)

    async def _on_server_iq(self, iq: ET.Element) -> None:
        kind = iq.get("type")
        if kind in ("result", "error"):
            return  # answers to our own requests; the server sends none
        if kind not in ("get", "set") or len(iq) != 1:
            await self._iq_error(iq, "bad-request", "modify")
            return
        child = iq[0]
        ns = namespace(child)
        if ns == NS_CARBONS and local_name(child) in ("enable", "disable"):
            self.carbons = local_name(child) == "enable"
            await self._iq_result(iq)
        elif ns == NS_PING or ns.startswith("jabber:iq:") or ns in SERVER_IQ_NAMESPACES:
            await self._iq_result(iq)
        else:
            await self._iq_error(iq, "service-unavailable", "cancel")

    async def _iq_result(self, iq: ET.Element) -> None:
        await self._send(
            f'<iq xmlns="{NS_CLIENT}" type="result" id="{escape_attr(iq.get("id", ""))}"'
            f' from="{escape_attr(self.domain)}" to="{escape_attr(self.jid or "")}"/>'
        )

    async def _iq_error(self, iq: ET.Element, condition: str, kind: str) -> None:
        await self._send(
            f'<iq xmlns="{NS_CLIENT}" type="error" id="{escape_attr(iq.get("id", ""))}"'
            f' from="{escape_attr(self.domain)}" to="{escape_attr(self.jid or "")}">'
            f'<error type="{kind}"><{condition} xmlns="{NS_STANZAS}"/></error></iq>'
        )

    # -- output -------------------------------------------------------------------------------

    async def deliver(self, frame: str) -> None:
        """Send a routed stanza to this client, untouched."""
        if self.state == StreamState.BOUND:
            await self._send_quiet(frame)

    async def deliver_carbon(self, frame: str, message_type: str) -> None:
        """Send a copy of this user's own outgoing message (XEP-0280 sent carbon)."""
        if self.state != StreamState.BOUND or not self.carbons:
            return
        await self._send_quiet(
            f'<message xmlns="{NS_CLIENT}" from="{escape_attr(self.bare or "")}"'
            f' to="{escape_attr(self.jid or "")}" type="{escape_attr(message_type)}">'
            f'<sent xmlns="{NS_CARBONS}"><forwarded xmlns="{NS_FORWARD}">{frame}</forwarded></sent>'
            "</message>"
        )

    async def stream_error(self, condition: str, text: str) -> None:
        """Send a stream error, close the stream and the socket."""
        if self.state == StreamState.CLOSED:
            return
        logger.info("stream %s error %s: %s", self.jid, condition, text[:200])
        await self._send_quiet(
            f'<stream:error xmlns:stream="{NS_STREAMS}"><{condition} xmlns="{NS_STREAM_ERRORS}"/>'
            f"</stream:error>"
        )
        await self._send_quiet(f'<close xmlns="{NS_FRAMING}"/>')
        await self.disconnected()
        await self._close()

    async def disconnected(self) -> None:
        """Forget the stream (socket gone or closed); idempotent."""
        if self.state == StreamState.CLOSED:
            return
        was_bound = self.state == StreamState.BOUND
        self._set_state(StreamState.CLOSED)
        if was_bound:
            await self._router.unbind(self)

    async def _send_quiet(self, frame: str) -> None:
        try:
            await self._send(frame)
        except Exception as exc:  # the socket may already be gone
            logger.debug("stream %s send failed: %s", self.jid, exc)
