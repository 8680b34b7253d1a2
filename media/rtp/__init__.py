"""Django-free RTP for the SIP leg: packets, RFC 4733 DTMF, statistics and the UDP endpoint."""
