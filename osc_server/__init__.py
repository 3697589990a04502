"""OSC front end: `redrum serve` answers DAW scripts over UDP."""

from osc_server.server import OscServer

__all__ = ["OscServer"]
