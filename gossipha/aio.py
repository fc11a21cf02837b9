"""`within`: asyncio.wait_for without the Python 3.11 flaw that made a task uncancellable.

In 3.11, when a task waiting in `asyncio.wait_for` is cancelled in the same loop turn as
the awaited operation completes, wait_for returns the result and the cancellation is lost
(CPython gh-86296, fixed in 3.12 by building wait_for on `asyncio.timeout`). A polling loop
(`while True: await wait_for(...); await sleep(...)`) then never ends: a lab test waiting
for a VIP watcher with a 0.5 s duration hung for ten minutes on it. `asyncio.timeout`
awaits in the calling task, whose pending cancellation is never dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(aw: Awaitable[T], timeout_s: float | None) -> T:
    """`await aw`, or TimeoutError after `timeout_s` (None: no limit)."""
    async with asyncio.timeout(timeout_s):
        return await aw
