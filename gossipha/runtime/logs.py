"""Where the agent logs: stderr always, and Heartbeat's logfile/debugfile/logfacility.

Lines are `event key=value ...` so they grep and parse the same in every destination.
`logfile` gets INFO and up, `debugfile` everything, syslog INFO and up with the configured
facility (via /dev/log when present). Files use WatchedFileHandler, so logrotate works
without a signal. `configure` may be called again after a reload; it replaces only the
handlers it installed. The agent's `--log-level` overrides the configuration's level.

Under journald (stderr is the stream systemd names in JOURNAL_STREAM) stderr lines carry
their syslog priority as sd-daemon(3) `<N>` prefixes and no timestamp of their own, so
`journalctl -p warning` shows the warnings; and `logfacility` is left to journald's
forwarding rather than sent to /dev/log a second time.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from gossipha.config.model import Logging

LOGGER = "gossipha"
_MARK = "_gossipha_handler"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SYSLOG_FORMAT = "gossipha[%(process)d]: %(levelname)s %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"  # journald stamps each entry
DEV_LOG = "/dev/log"
# `--log-level` names: the standard ones, lower case as operators type them.
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def kv(event: str, **fields: object) -> str:
    """`event k=v k=v`; values with spaces are quoted so lines stay machine-readable."""
    parts = [event]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if not text or any(c in text for c in ' "=\n'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: debug 7, info 6, warning 4, error 3, crit 2."""
    if levelno <= logging.DEBUG:
        return 7
    if levelno <= logging.INFO:
        return 6
    if levelno <= logging.WARNING:
        return 4
    return 3 if levelno <= logging.ERROR else 2


class JournalFormatter(logging.Formatter):
    """sd-daemon(3) lines: every line of a record (a traceback too) starts with `<N>`,
    journald's priority for the entry it becomes."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def under_journald(stream: object) -> bool:
    """Is `stream` the journal stream systemd gave us (JOURNAL_STREAM is `dev:inode`)?
    Inherited by a program started from the service, the variable names a stream it no
    longer has, so the descriptor itself is compared (systemd.exec(5))."""
    dev, sep, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (sep and dev.isdigit() and ino.isdigit()):
        return False
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        return False
    try:
        st = os.fstat(fileno())
    except (OSError, ValueError):  # closed, or no descriptor (io.UnsupportedOperation)
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def _mark(handler: logging.Handler) -> logging.Handler:
    setattr(handler, _MARK, True)
    return handler


def configure(settings: Logging, *, level: int | None = None) -> list[str]:
    """(Re)install the handlers for `settings`; returns problems (unwritable files) to log.

    `level` (--log-level) wins over the configuration's `debug`: nothing below it is logged
    anywhere, and stderr shows everything from it up. Files and syslog keep their floors."""
    root = logging.getLogger(LOGGER)
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            with contextlib.suppress(Exception):
                handler.close()
    problems: list[str] = []
    debug = settings.debug > 0 or settings.debugfile is not None
    root.setLevel(level if level is not None else logging.DEBUG if debug else logging.INFO)
    root.propagate = False
    formatter = logging.Formatter(FORMAT)
    journald = under_journald(sys.stderr)
    stderr = _mark(logging.StreamHandler(sys.stderr))
    if level is not None:
        stderr.setLevel(level)
    else:
        stderr.setLevel(logging.DEBUG if settings.debug > 0 else logging.INFO)
    stderr.setFormatter(JournalFormatter() if journald else formatter)
    root.addHandler(stderr)
    for path, floor in ((settings.logfile, logging.INFO), (settings.debugfile, logging.DEBUG)):
        if path is None:
            continue
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            handler = _mark(logging.handlers.WatchedFileHandler(path))
        except OSError as exc:
            problems.append(kv("log file unusable", path=path, error=exc))
            continue
        handler.setLevel(floor)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    if settings.facility is not None and journald:
        # journald already has every line and forwards it to syslog where so configured.
        pass
    elif settings.facility is not None and os.path.exists(DEV_LOG):
        facility = logging.handlers.SysLogHandler.facility_names.get(settings.facility.lower())
        if facility is None:
            problems.append(kv("unknown syslog facility", facility=settings.facility))
        else:
            try:
                syslog = _mark(logging.handlers.SysLogHandler(DEV_LOG, facility))
            except OSError as exc:
                problems.append(kv("syslog unusable", address=DEV_LOG, error=exc))
            else:
                syslog.setLevel(logging.INFO)
                syslog.setFormatter(logging.Formatter(SYSLOG_FORMAT))
                root.addHandler(syslog)
    return problems


def close() -> None:
    """Remove and close the handlers `configure` installed (safe to call twice)."""
    root = logging.getLogger(LOGGER)
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            with contextlib.suppress(Exception):
                handler.close()
