"""A ConnectyCube-compatible endpoint (REST and XMPP over WebSocket) for development and tests."""
