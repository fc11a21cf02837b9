"""runtime/memlock.py: trim_heap is safe to call at any time and says what it did."""

from __future__ import annotations

from gossipha.runtime.memlock import trim_heap


def test_trim_heap_says_what_it_did() -> None:
    assert trim_heap() in ("released", "nothing to release", "skipped (no malloc_trim)")
    assert trim_heap() in ("released", "nothing to release", "skipped (no malloc_trim)")
