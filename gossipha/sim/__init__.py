"""Deterministic simulator: many real `Node` cores on a fake clock and a fake network.

Seeded and reproducible: the same seed gives the same schedule, the same messages and the
same verdict. Checkers run after every step (safety) and at the end (liveness). The swarm
(`swarm.py`) draws a cluster, timings and faults per schedule, as a fault script that
replays on its own.
"""
