"""Logging under journald: stderr is the stream systemd names in JOURNAL_STREAM, so every
line carries its syslog priority as an sd-daemon(3) `<N>` prefix (what `journalctl -p`
filters on) and no second timestamp, and `logfacility` is not sent to syslog twice."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipha.config.model import Logging
from gossipha.runtime import logs

log = logging.getLogger("gossipha.test")


@pytest.fixture(autouse=True)
def _closed_logs() -> Iterator[None]:
    yield
    logs.close()
    logging.getLogger(logs.LOGGER).setLevel(logging.NOTSET)


def _stream(path: Path, monkeypatch: pytest.MonkeyPatch, *, journal: bool) -> object:
    stream = path.open("w", buffering=1)
    monkeypatch.setattr("sys.stderr", stream)
    st = os.fstat(stream.fileno())
    # An inherited variable names another stream (a child started from the service).
    ino = st.st_ino if journal else st.st_ino + 1
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{ino}")
    return stream


def test_journal_lines_carry_the_priority_and_no_timestamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "stderr"
    _stream(out, monkeypatch, journal=True)
    logs.configure(Logging(debug=1))
    log.debug("detail")
    log.info("group started")
    log.warning("peer_dead node=n1")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("start error")
    lines = out.read_text().splitlines()
    assert lines[0] == "<7>DEBUG gossipha.test: detail"
    assert lines[1] == "<6>INFO gossipha.test: group started"
    assert lines[2] == "<4>WARNING gossipha.test: peer_dead node=n1"
    assert lines[3] == "<3>ERROR gossipha.test: start error"
    assert len(lines) > 5, "the traceback"
    assert all(line.startswith("<3>") for line in lines[3:]), "every traceback line too"
    assert not any(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line) for line in lines)


def test_an_inherited_journal_stream_of_another_descriptor_keeps_the_plain_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "stderr"
    _stream(out, monkeypatch, journal=False)
    logs.configure(Logging())
    log.warning("peer_dead node=n1")
    (line,) = out.read_text().splitlines()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING gossipha.test: peer_dead", line)


@pytest.mark.parametrize("journal", [True, False])
def test_logfacility_goes_to_syslog_only_without_journald(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: bool
) -> None:
    dev_log = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslogd:
        syslogd.bind(str(dev_log))
        syslogd.settimeout(0.5)
        monkeypatch.setattr(logs, "DEV_LOG", str(dev_log))
        _stream(tmp_path / "stderr", monkeypatch, journal=journal)
        assert logs.configure(Logging(facility="local0")) == []
        log.warning("peer_dead node=n1")
        if journal:
            with pytest.raises(TimeoutError):
                syslogd.recv(4096)
        else:
            got = syslogd.recv(4096).decode()
            assert got.startswith(f"<{16 * 8 + 4}>gossipha[")  # local0.warning
            assert "peer_dead node=n1" in got
