"""The gateway's error root: every error the gateway raises on purpose derives from GatewayError."""


class GatewayError(Exception):
    """Root of the gateway's errors."""


class ConfigError(GatewayError, ValueError):
    """A cabin's configuration is invalid."""


class DecodeError(GatewayError, ValueError):
    """A device payload is truncated or inconsistent; the message says what is wrong."""
