"""Heartbeat's `respawn USER COMMAND`: keep a helper program running, restart it with backoff.

Each program runs as USER (when we are root), with ordinary scheduling (`gossipha.child`),
in its own session so it can be signalled as a process group... but we only ever signal
its PID. On shutdown it gets SIGTERM, then SIGKILL after a bound; if the agent dies, a
SIGTERM (a death signal): systemd leaves the agent's children alone (KillMode=process, so
services survive to be adopted), and a restarted agent starts its own copy. Restarts back
off from 1 s doubling to 60 s, reset after a minute of uptime, so a crashing helper costs
at most one start a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from gossipha.aio import within
from gossipha.child import start_child
from gossipha.config.model import Respawn
from gossipha.runtime.logs import kv

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
HEALTHY_AFTER_S = 60.0
TERM_WAIT_S = 5.0


def next_backoff_s(previous_s: float, uptime_s: float) -> float:
    """Delay before the next start: reset after a healthy run, else double up to the cap."""
    if uptime_s >= HEALTHY_AFTER_S or previous_s <= 0:
        return FIRST_BACKOFF_S
    return min(previous_s * 2.0, MAX_BACKOFF_S)


class Respawner:
    """Runs one `Respawn` until cancelled; the child is killed by PID on the way out."""

    def __init__(self, spec: Respawn, env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.env = env
        self.starts = 0
        self.proc: asyncio.subprocess.Process | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff_s = 0.0
        try:
            while True:
                started_s = loop.time()
                try:
                    self.proc = await start_child(
                        self.spec.command,
                        user=self.spec.user if os.geteuid() == 0 else None,
                        env=self.env,
                        end_with_agent=True,
                    )
                except (OSError, ValueError, KeyError) as exc:
                    log.error(kv("respawn start failed", command=self.spec.command[0], error=exc))
                    code: int | None = None
                else:
                    self.starts += 1
                    log.info(kv("respawn started", command=self.spec.command[0], pid=self.proc.pid))
                    code = await self.proc.wait()
                    self.proc = None
                uptime_s = loop.time() - started_s
                backoff_s = next_backoff_s(backoff_s, uptime_s)
                log.warning(
                    kv(
                        "respawn exited",
                        command=self.spec.command[0],
                        status=code,
                        restart_in_s=f"{backoff_s:g}",
                    )
                )
                await asyncio.sleep(backoff_s)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """SIGTERM, wait, SIGKILL: by PID only; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            await within(asyncio.shield(proc.wait()), TERM_WAIT_S)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await within(proc.wait(), TERM_WAIT_S)
