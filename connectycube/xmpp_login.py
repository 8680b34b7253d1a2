"""The ConnectyCube chat login over an RFC 7395 stream. Django-free.

It does what the official SDK does on connect (protocol doc section 4.4): SASL PLAIN with
`{userId}-{appId}` and the password or session token, bind with a server-assigned resource,
carbons enable, presence. The caller owns the socket: `send` writes one frame, `recv` reads
the next element (answering server pings on the way).
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

from .errors import AuthError, ConnectyCubeUnavailable
from .stanza import (
    NS_BIND,
    NS_CARBONS,
    NS_CLIENT,
    NS_FRAMING,
    NS_SASL,
    NS_STREAMS,
    escape_attr,
    local_name,
    new_id,
    qname,
)

Send = Callable[[str], Awaitable[None]]
Recv = Callable[[], Awaitable[ET.Element]]


async def login(send: Send, recv: Recv, *, host: str, user_id: int, app_id: int, password: str) -> str:
    """Log in and bind; return the bound JID. Raise AuthError or ConnectyCubeUnavailable."""
    features = await open_stream(send, recv, host)
    mechanisms = features.find(qname(NS_SASL, "mechanisms"))
    offered = [m.text for m in mechanisms] if mechanisms is not None else []
    if "PLAIN" not in offered:
        raise ConnectyCubeUnavailable(0, None, f"chat server offers no SASL PLAIN ({offered})")
    local = f"{user_id}-{app_id}"
    payload = base64.b64encode(f"\0{local}\0{password}".encode()).decode()
    await send(f'<auth xmlns="{NS_SASL}" mechanism="PLAIN">{payload}</auth>')
    reply = await recv()
    if local_name(reply) != "success":
        reason = local_name(reply[0]) if len(reply) else local_name(reply)
        raise AuthError(
            401, reason,
            f"ConnectyCube chat refused the login of user {user_id} for app {app_id}: {reason}",
        )
    features = await open_stream(send, recv, host)
    if features.find(qname(NS_BIND, "bind")) is None:
        raise ConnectyCubeUnavailable(0, None, "chat server offers no resource binding")
    bind_id = new_id()
    await send(f'<iq type="set" id="{bind_id}" xmlns="{NS_CLIENT}"><bind xmlns="{NS_BIND}"/></iq>')
    reply = await recv()
    jid = reply.findtext(f"{qname(NS_BIND, 'bind')}/{qname(NS_BIND, 'jid')}")
    if reply.get("type") != "result" or not jid:
        raise ConnectyCubeUnavailable(0, None, "chat server refused resource binding")
    carbons_id = new_id()
    await send(f'<iq type="set" id="{carbons_id}" xmlns="{NS_CLIENT}"><enable xmlns="{NS_CARBONS}"/></iq>')
    await send(f'<presence xmlns="{NS_CLIENT}"/>')
    return jid


async def open_stream(send: Send, recv: Recv, host: str) -> ET.Element:
    """Open (or restart) the stream; return the server's stream features."""
    await send(f'<open xmlns="{NS_FRAMING}" to="{escape_attr(host)}" version="1.0"/>')
    opened = await recv()
    if opened.tag != qname(NS_FRAMING, "open"):
        raise ConnectyCubeUnavailable(0, None, f"chat server sent {opened.tag} instead of <open/>")
    features = await recv()
    if features.tag != qname(NS_STREAMS, "features"):
        raise ConnectyCubeUnavailable(0, None, f"chat server sent {features.tag}, not features")
    return features
