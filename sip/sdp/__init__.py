"""SDP for the SIP stack and the media worker (RFC 4566; offer/answer per RFC 3264). Django-free.

- ``description``: parse and serialise whole bodies (``SessionDescription``).
- ``negotiate``: read the far end's audio stream and choose a codec (``parse_audio``).
- ``write``: our own bodies (``audio_offer``, ``SdpWriter``).
- ``direction``: mirror, read and replace the stream direction, bumping the o= version.
- ``codec``: payload formats (``Codec``, ``PCMU``...).

Parsers raise ValueError with the offending line.
"""

from .codec import AUDIO_CODECS, G722, G729, PCMA, PCMU, RFC3551_STATIC, STATIC, TELEPHONE_EVENT, Codec
from .description import DIRECTIONS, MAX_SDP_LINES, MediaDescription, SessionDescription
from .direction import answer_direction, answer_sdp, mirror_direction, sdp_direction, with_direction
from .negotiate import NULL_HOSTS, AudioDescription, NoCommonCodec, choose_codec, parse_audio
from .write import SdpWriter, audio_offer

__all__ = [
    "AUDIO_CODECS",
    "DIRECTIONS",
    "G722",
    "G729",
    "MAX_SDP_LINES",
    "NULL_HOSTS",
    "PCMA",
    "PCMU",
    "RFC3551_STATIC",
    "STATIC",
    "TELEPHONE_EVENT",
    "AudioDescription",
    "Codec",
    "MediaDescription",
    "NoCommonCodec",
    "SdpWriter",
    "SessionDescription",
    "answer_direction",
    "answer_sdp",
    "audio_offer",
    "choose_codec",
    "mirror_direction",
    "parse_audio",
    "sdp_direction",
    "with_direction",
]
