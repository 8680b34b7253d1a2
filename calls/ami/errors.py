"""Exceptions raised by the AMI client."""

from __future__ import annotations


class AmiError(Exception):
    """An AMI action failed, or the AMI link misbehaved."""


class ChannelGone(AmiError):
    """The channel an action names no longer exists in Asterisk."""


class AmiTimeout(AmiError):
    """Asterisk did not answer an action in time."""


class AmiNotConnected(AmiError):
    """There is no logged-in AMI connection to send the action on."""


class AmiLoginError(AmiError):
    """Asterisk refused the AMI username or secret."""
