"""WebSocket routes of the product."""

from django.urls import path

from calls.consumers import BoardConsumer

websocket_urlpatterns = [
    path("ws/board/", BoardConsumer.as_asgi()),
]
