"""The benchmarks' stop request: SIGTERM and SIGINT set it and say so; nothing else."""

from __future__ import annotations

import os
import signal

import pytest

from gossipha.lab.stopping import StopRequest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_requests_a_stop_after_the_step(
    sig: signal.Signals, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop = StopRequest("bench.py", "this run").install()
        assert not stop() and not stop.requested
        os.kill(os.getpid(), sig)
        assert stop() and stop.requested
        assert f"bench.py: {sig.name}: stopping after this run" in capsys.readouterr().err
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
