"""Django-free media sessions: one SIP RTP leg bridged to one aiortc WebRTC leg."""
