"""The cabin screen: a kiosk page served by the gateway on 127.0.0.1, with the call's media over loopback."""

from gateway.kiosk.server import DEFAULT_PORT, KioskServer

__all__ = ["DEFAULT_PORT", "KioskServer"]
