"""Django-free ConnectyCube client: REST, XMPP chat over WebSocket and P2P call signalling."""
