"""Locking the agent's memory, so a node under memory pressure is not paged out mid-lease.

A heartbeat or lease renewal that waits on swap is a missed deadline; `mlockall` keeps the
agent resident. Only done when the memlock limit is unlimited: with a finite limit a later
allocation could fail instead, which is worse than being paged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource

MCL_CURRENT = 1
MCL_FUTURE = 2


def lock_memory() -> str:
    """mlockall when the memlock limit allows it all (else a later allocation could fail)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft != resource.RLIM_INFINITY:
        return f"skipped (LimitMEMLOCK={soft}, needs infinity)"
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        return f"failed: {os.strerror(ctypes.get_errno())}"
    return "locked"
