"""The signaling server's error root."""


class SignalingError(Exception):
    """Root of the signaling server's errors."""
