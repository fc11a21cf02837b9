"""Adapters that act on the host: the VIP, services."""
