"""The two ways a runtime helper acts on the agent: feed the core, spawn a task.

Helpers (groups, VIP tasks, signals, the pinger) get these from the agent instead of the
agent itself, so each stays testable alone and none can step the core but through `Feed`
(one atomic `Node.step`, its output performed) or start a task outside the agent's one
TaskGroup (`Spawn` returns None, closing the coroutine, once the agent is closing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from gossipha.core.types import Input

Feed = Callable[[Input], None]
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None] | None"]
