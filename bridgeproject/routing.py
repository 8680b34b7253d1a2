"""WebSocket routes of the product (the live call board joins here)."""

websocket_urlpatterns: list = []
