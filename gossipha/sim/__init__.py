"""Deterministic simulator: many real `Node` cores on a fake clock and a fake network.

Seeded and reproducible: the same seed gives the same schedule, the same messages and the
same verdict. Checkers run after every step (safety) and at the end (liveness).
"""
