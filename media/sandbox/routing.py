"""WebSocket routes of the sandbox, mounted under /cc-sandbox/chat/ when CONNECTYCUBE_SANDBOX is on."""

websocket_urlpatterns: list = []
