"""The edge role: SIP toward Asterisk, ConnectyCube signalling toward the apps, one state machine
per call joining them; media is delegated to the workers (`media.control`)."""
