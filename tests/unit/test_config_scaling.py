"""Loading grows linearly with the file: 20,000 `ucast` lines once took 12 s.

Counted, not timed: the number of Python and C calls made while loading is the same on
every run and every machine, so a shared CI box cannot make this flake. Four times the
lines must cost about four times the calls; the quadratic scan cost sixteen.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType

from gossipha.config.load import load


def _write_ha_d(directory: Path, peers: int) -> Path:
    directory.mkdir()
    ucast = (f"ucast eth1 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(peers))
    (directory / "ha.cf").write_text(
        "\n".join(["keepalive 1", "deadtime 10", "auto_failback on", "node alpha beta", *ucast])
        + "\n"
    )
    (directory / "haresources").write_text("alpha 192.168.171.100/24/eth0\n")
    (directory / "authkeys").write_text("auth 1\n1 sha256 secret\n")
    (directory / "authkeys").chmod(0o600)
    return directory


def _calls_to_load(directory: Path) -> int:
    calls = 0

    def count(_frame: FrameType, event: str, _arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        load(directory, "alpha", host_addresses=frozenset())
    finally:
        sys.setprofile(None)
    return calls


def test_ucast_lines_load_in_linear_calls(tmp_path: Path) -> None:
    small = _calls_to_load(_write_ha_d(tmp_path / "small", 500))
    large = _calls_to_load(_write_ha_d(tmp_path / "large", 2000))
    # Linear: about 4x (fixed costs make it a little less). Quadratic: about 16x.
    assert large / small < 5, (small, large)
