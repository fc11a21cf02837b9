"""gossipha: a high-availability cluster agent that replaces Linux-HA Heartbeat."""

__version__ = "0.1.0"
