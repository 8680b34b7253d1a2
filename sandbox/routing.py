"""WebSocket routes of the sandbox, mounted under /cc-sandbox/chat/ when CONNECTYCUBE_SANDBOX is on."""

from django.urls import re_path

from .xmpp_consumer import XmppConsumer

# The SDK connects to whatever chat_url says; accept the mount point with or without a suffix.
websocket_urlpatterns: list = [re_path(r"^.*$", XmppConsumer.as_asgi())]
