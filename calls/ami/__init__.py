"""Django-free AMI client: a small typed adapter over panoramisk 1.4."""

from .actions import OriginateReason, OriginateResult
from .client import AmiClient, State
from .errors import AmiError, AmiLoginError, AmiNotConnected, AmiTimeout, ChannelGone
from .events import AmiEvent, AmiMessage, AmiResponse

__all__ = [
    "AmiClient",
    "AmiError",
    "AmiEvent",
    "AmiLoginError",
    "AmiMessage",
    "AmiNotConnected",
    "AmiResponse",
    "AmiTimeout",
    "ChannelGone",
    "OriginateReason",
    "OriginateResult",
    "State",
]
