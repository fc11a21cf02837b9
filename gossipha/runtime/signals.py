"""The agent's signals: SIGTERM/SIGINT hand the groups over, SIGHUP reloads keys and logging.

A first stop signal asks the core to hand over (`Shutdown`) and arms a timer: if the
handover has not ended the agent within `timeout_s`, or a second stop signal arrives, the
agent stops at once (its cleanup still stops every group and removes its VIPs). Handlers
are installed once the core exists and removed in cleanup (safe to remove twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from gossipha.runtime.callbacks import Spawn
from gossipha.runtime.logs import kv

# The agent's logger: its lines keep the name operators and bench/failover.py read.
log = logging.getLogger("gossipha.agent")

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class AgentSignals:
    """What each signal does; `install` and `remove` pair like setup and cleanup."""

    def __init__(
        self,
        *,
        timeout_s: float,
        hand_over: Callable[[], None],
        stop_now: Callable[[], None],
        reload: Callable[[], Coroutine[Any, Any, None]],
        spawn: Spawn,
    ) -> None:
        self._timeout_s = timeout_s
        self._hand_over = hand_over
        self._stop_now = stop_now
        self._reload = reload
        self._spawn = spawn
        self.shutdown_requested = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self._on_terminate, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_terminate, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)

    @staticmethod
    def remove(loop: asyncio.AbstractEventLoop) -> None:
        for sig in HANDLED:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)

    def _on_terminate(self, name: str) -> None:
        if self.shutdown_requested:
            log.warning(kv("second stop signal: stopping resources now", signal=name))
            self._stop_now()
            return
        self.shutdown_requested = True
        log.info(kv("graceful shutdown", signal=name, timeout_s=self._timeout_s))
        self._spawn(self._shutdown_timer(), "shutdown-timer")
        self._hand_over()

    async def _shutdown_timer(self) -> None:
        await asyncio.sleep(self._timeout_s)
        log.warning(
            kv("graceful shutdown timed out: stopping resources now", timeout_s=self._timeout_s)
        )
        self._stop_now()

    def _on_hangup(self) -> None:
        self._spawn(self._reload(), "reload")
