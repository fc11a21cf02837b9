"""Reject counting for metrics and rate-limited reject logging."""

from __future__ import annotations

import pytest

from gossipha.wire.reject import (
    Reject,
    RejectCounter,
    RejectLogLimiter,
    RejectLogLine,
    RejectReason,
)

R = RejectReason


def test_counter_counts_per_reason_and_snapshots_are_copies() -> None:
    c = RejectCounter()
    for reason in (R.BAD_MAC, R.BAD_MAC, R.REPLAY):
        c.add(Reject(reason))
    snap = c.snapshot()
    c.add(Reject(R.BAD_MAC))
    assert snap[R.BAD_MAC] == 2 and c[R.BAD_MAC] == 3
    assert c[R.REPLAY] == 1 and c[R.WRONG_CLUSTER] == 0
    assert c.total == 4
    assert set(c) == set(RejectReason)  # every reason is exported, zero or not


def test_flood_yields_one_line_per_interval_with_the_suppressed_count() -> None:
    lim = RejectLogLimiter(interval_s=10.0)
    lines = [lim.observe(Reject(R.WRONG_CLUSTER), now_s=t * 0.001) for t in range(10_000)]
    logged = [line for line in lines if line is not None]
    # 10,000 rejects over 10 s: one line at t=0; the next comes once 10 s have passed.
    assert logged == [RejectLogLine(R.WRONG_CLUSTER, None, 0)]
    nxt = lim.observe(Reject(R.WRONG_CLUSTER), now_s=10.0)
    assert nxt == RejectLogLine(R.WRONG_CLUSTER, None, 9_999)
    assert "reason=wrong_cluster" in nxt.render() and "suppressed=9999" in nxt.render()


def test_reasons_and_peers_are_limited_separately() -> None:
    lim = RejectLogLimiter(interval_s=10.0)
    assert lim.observe(Reject(R.BAD_MAC, "a"), 0.0) is not None
    assert lim.observe(Reject(R.BAD_MAC, "b"), 0.0) is not None
    assert lim.observe(Reject(R.REPLAY, "a"), 0.0) is not None
    assert lim.observe(Reject(R.BAD_MAC, "a"), 1.0) is None


def test_flush_reports_a_burst_that_stopped() -> None:
    lim = RejectLogLimiter(interval_s=5.0)
    lim.observe(Reject(R.BAD_MAGIC), 0.0)
    lim.observe(Reject(R.BAD_MAGIC), 1.0)
    lim.observe(Reject(R.BAD_MAGIC), 2.0)
    assert lim.flush(4.0) == []  # interval not over yet
    (line,) = lim.flush(5.0)
    assert line == RejectLogLine(R.BAD_MAGIC, None, 2, summary=True)
    assert line.render().startswith("rejects suppressed reason=bad_magic")
    assert lim.flush(100.0) == []  # reported once
    # The summary counts as a line: the next reject within the interval stays quiet.
    assert lim.observe(Reject(R.BAD_MAGIC), 6.0) is None


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RejectLogLimiter(0.0)
