"""The sandbox chat: a Channels consumer around the Django-free `XmppStream`.

Routing goes through the channel layer, one group per bare JID and one per full JID, so streams
held by different daphne processes reach each other. Groups key on `{userId}-{appId}` only,
so a client whose JID domain differs from the app's still gets its messages.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from connectycube.stanza import user_id_from_jid

from .xmpp_stream import XmppStream

logger = logging.getLogger(__name__)

GROUP_PREFIX = "ccsb"
DEFAULT_DOMAIN = "localhost"


def bare_group(user_id: int, app_id: int) -> str:
    """Return the channel-layer group of every resource of a user."""
    return f"{GROUP_PREFIX}.{int(user_id)}-{int(app_id)}"


def _group_for_jid(jid: str) -> str | None:
    local, _, rest = jid.partition("@")
    match = re.fullmatch(r"(\d+)-(\d+)", local)
    if match is None:
        return None
    group = bare_group(int(match.group(1)), int(match.group(2)))
    _, slash, resource = rest.partition("/")
    if slash:
        group = f"{group}.{re.sub(r'[^A-Za-z0-9_.-]', '', resource)[:64]}"
    return group


def deliver_event(frame: str, origin: str | None) -> dict[str, Any]:
    """Return the channel-layer event that hands `frame` to every stream of a group."""
    return {"type": "xmpp.deliver", "frame": frame, "origin": origin}


class SandboxAuthenticator:
    """Check SASL PLAIN secrets against sandbox users and live sessions."""

    async def authenticate(self, user_id: int, app_id: int, secret: str) -> str | None:
        return await database_sync_to_async(self._check)(user_id, app_id, secret)

    @staticmethod
    def _check(user_id: int, app_id: int, secret: str) -> str | None:
        from mappings.models import ConnectyCubeApp

        from .models import SandboxSession, SandboxUser

        app = ConnectyCubeApp.objects.filter(app_id=app_id).first()
        user = SandboxUser.objects.filter(pk=user_id).first()
        if app is None or user is None or not secret:
            return None
        token_ok = SandboxSession.objects.filter(
            token=secret, user=user, app_id=app_id, expires__gt=timezone.now()
        ).exists()
        if token_ok or user.check_password(secret):
            return app.chat_domain or DEFAULT_DOMAIN
        return None


class ChannelRouter:
    """Route a stream's stanzas through the channel layer."""

    def __init__(self, consumer: XmppConsumer) -> None:
        self.consumer = consumer
        self.groups: list[str] = []

    async def bind(self, stream: XmppStream) -> None:
        assert stream.jid is not None
        for group in (_group_for_jid(stream.bare or ""), _group_for_jid(stream.jid)):
            if group:
                await self.consumer.channel_layer.group_add(group, self.consumer.channel_name)
                self.groups.append(group)

    async def unbind(self, stream: XmppStream) -> None:
        for group in self.groups:
            await self.consumer.channel_layer.group_discard(group, self.consumer.channel_name)
        self.groups = []

    async def route(self, stream: XmppStream, to: str, frame: str, carbon: str | None) -> None:
        layer = self.consumer.channel_layer
        group = _group_for_jid(to)
        if group is None:
            logger.info("sandbox chat: dropping a stanza to unknown JID %r", to[:100])
            return
        await layer.group_send(group, deliver_event(frame, self.consumer.channel_name))
        if carbon and stream.bare and user_id_from_jid(stream.bare) is not None:
            await layer.group_send(
                self.groups[0],
                {"type": "xmpp.carbon", "frame": frame, "message_type": carbon,
                 "origin": self.consumer.channel_name},
            )


class XmppConsumer(AsyncWebsocketConsumer):
    """One XMPP-over-WebSocket client connection (RFC 7395)."""

    stream: XmppStream | None = None

    async def connect(self) -> None:
        if "xmpp" not in self.scope.get("subprotocols", []):
            # RFC 7395 section 3.2: the client must ask for the xmpp subprotocol.
            await self.close(code=1002)
            return
        domain = getattr(settings, "CONNECTYCUBE_SANDBOX_CHAT_DOMAIN", DEFAULT_DOMAIN)
        max_frame = getattr(settings, "CONNECTYCUBE_SANDBOX_MAX_FRAME", 256 * 1024)
        self.router = ChannelRouter(self)
        self.stream = XmppStream(
            domain, self._send_frame, self._close_socket, SandboxAuthenticator(), self.router,
            max_frame=max_frame,
        )
        await self.accept(subprotocol="xmpp")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.stream is None:
            return
        if text_data is None:
            await self.stream.stream_error("unsupported-encoding", "binary frames are not XMPP")
            return
        await self.stream.receive(text_data)

    async def disconnect(self, code: int) -> None:
        if self.stream is not None:
            await self.stream.disconnected()

    async def xmpp_deliver(self, event: dict[str, Any]) -> None:
        if self.stream is not None:
            await self.stream.deliver(event["frame"])

    async def xmpp_carbon(self, event: dict[str, Any]) -> None:
        if self.stream is not None and event.get("origin") != self.channel_name:
            await self.stream.deliver_carbon(event["frame"], event["message_type"])

    async def _send_frame(self, frame: str) -> None:
        await self.send(text_data=frame)

    async def _close_socket(self) -> None:
        await self.close()
