"""Bytes on the wire <-> verified messages; pure."""
