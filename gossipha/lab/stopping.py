"""SIGTERM/SIGINT for a long lab benchmark: finish the running step, then report.

Shared by bench/failover.py and bench/scale_lab.py. A forked helper (pyroute2's netns
code forks) that inherits the handler dies as it would by default instead of setting a
flag nobody reads.
"""

from __future__ import annotations

import os
import signal
import sys


class StopRequest:
    """`requested` turns true on SIGTERM or SIGINT (after `install`); say what stops."""

    def __init__(self, program: str, after: str) -> None:
        self.requested = False
        self._program, self._after = program, after
        self._pid = os.getpid()

    def install(self) -> StopRequest:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __call__(self) -> bool:
        return self.requested

    def _on_signal(self, signum: int, _frame: object) -> None:
        if os.getpid() != self._pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.requested = True
        name = signal.Signals(signum).name
        print(f"{self._program}: {name}: stopping after {self._after}", file=sys.stderr)
