"""What a process and a lab node cost: CPU seconds, RSS/PSS, interface packet counters.

Samples are read from /proc only (no netlink, no process spawned), so measuring an idle
agent does not disturb it: `sample_process(pid)` reads ``/proc/PID/stat``, ``status`` and
``smaps_rollup``; `sample_links(lab, node)` reads ``/proc/PID/net/dev`` of a process in the
node's namespace (the kernel shows the reader the *target's* namespace), falling back to
netlink when nothing runs there. `process_rate` and `link_rate` turn two samples taken
`elapsed_s` apart into a share of one core and packets per second. The parsers are pure.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gossipha.lab.topology import Lab

CLOCK_TICKS_PER_S = float(os.sysconf("SC_CLK_TCK"))
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
# Interfaces that carry no cluster traffic: left out of a node's totals.
IGNORED_IFACES = frozenset({"lo"})


class UsageError(RuntimeError):
    """A /proc file could not be read or parsed (the process is gone, or not Linux)."""


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One reading of one process. CPU in seconds since it started; memory in bytes.

    `children_cpu_s` is what its reaped children used (a service's status script, a
    probe): kept apart, since the agent's own cost is `cpu_s`. `pss_bytes` is None when
    smaps_rollup is unreadable (kernel < 4.14).
    """

    pid: int
    at_s: float  # time.monotonic() of the reading
    cpu_s: float  # utime + stime
    children_cpu_s: float  # cutime + cstime
    rss_bytes: int
    rss_anon_bytes: int
    rss_file_bytes: int
    pss_bytes: int | None
    locked_bytes: int
    threads: int


@dataclass(frozen=True, slots=True)
class IfaceCounters:
    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True, slots=True)
class LinkCounters:
    """Every interface of one namespace but lo, read at `at_s` (time.monotonic())."""

    at_s: float
    ifaces: Mapping[str, IfaceCounters]

    @property
    def rx_packets(self) -> int:
        return sum(c.rx_packets for c in self.ifaces.values())

    @property
    def tx_packets(self) -> int:
        return sum(c.tx_packets for c in self.ifaces.values())

    @property
    def rx_bytes(self) -> int:
        return sum(c.rx_bytes for c in self.ifaces.values())

    @property
    def tx_bytes(self) -> int:
        return sum(c.tx_bytes for c in self.ifaces.values())


@dataclass(frozen=True, slots=True)
class ProcessRate:
    """Between two readings of one process: share of one core (0.01 = 1 %), memory at end."""

    pid: int
    elapsed_s: float
    cpu_s: float
    cpu_fraction: float
    children_cpu_fraction: float
    rss_bytes: int
    pss_bytes: int | None


@dataclass(frozen=True, slots=True)
class LinkRate:
    """Between two readings of one namespace's interfaces: per second, all interfaces."""

    elapsed_s: float
    rx_pps: float
    tx_pps: float
    rx_bytes_per_s: float
    tx_bytes_per_s: float


# ---- parsers (pure) ----


def parse_stat(text: str) -> tuple[float, float, int]:
    """``/proc/PID/stat`` -> (utime+stime, cutime+cstime) in seconds, threads.

    The command name (field 2) may hold spaces and parentheses, so fields are counted
    from the last ')'.
    """
    close = text.rfind(")")
    if close < 0:
        raise UsageError(f"not a /proc/PID/stat line: {text[:60]!r}")
    rest = text[close + 1 :].split()
    # rest[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17,
    # num_threads 20.
    try:
        utime, stime, cutime, cstime = (int(rest[i]) for i in (11, 12, 13, 14))
        threads = int(rest[17])
    except (IndexError, ValueError) as exc:
        raise UsageError(f"short or malformed /proc/PID/stat: {text[:60]!r}") from exc
    return (utime + stime) / CLOCK_TICKS_PER_S, (cutime + cstime) / CLOCK_TICKS_PER_S, threads


def parse_kb_fields(text: str) -> dict[str, int]:
    """``Key:   123 kB`` lines (``/proc/PID/status``, ``smaps_rollup``) -> bytes per key;
    lines without a kB value are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        words = value.split()
        if len(words) == 2 and words[1] == "kB" and words[0].isdigit():
            out[key.strip()] = int(words[0]) * 1024
    return out


def parse_net_dev(text: str) -> dict[str, IfaceCounters]:
    """``/proc/net/dev`` -> counters per interface (all of them, lo included)."""
    out: dict[str, IfaceCounters] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if len(fields) < 16:
            raise UsageError(f"short /proc/net/dev line: {line!r}")
        out[name.strip()] = IfaceCounters(
            rx_packets=int(fields[1]),
            tx_packets=int(fields[9]),
            rx_bytes=int(fields[0]),
            tx_bytes=int(fields[8]),
        )
    return out


def process_rate(before: ProcessUsage, after: ProcessUsage) -> ProcessRate:
    """CPU share over the interval; memory as of `after`."""
    if before.pid != after.pid:
        raise ValueError(f"samples of two processes: {before.pid} and {after.pid}")
    elapsed_s = after.at_s - before.at_s
    if elapsed_s <= 0:
        raise ValueError(f"samples not in time order (elapsed {elapsed_s} s)")
    cpu_s = after.cpu_s - before.cpu_s
    return ProcessRate(
        pid=after.pid,
        elapsed_s=elapsed_s,
        cpu_s=cpu_s,
        cpu_fraction=cpu_s / elapsed_s,
        children_cpu_fraction=(after.children_cpu_s - before.children_cpu_s) / elapsed_s,
        rss_bytes=after.rss_bytes,
        pss_bytes=after.pss_bytes,
    )


def link_rate(before: LinkCounters, after: LinkCounters) -> LinkRate:
    """Packets and bytes per second over the interfaces present in both samples."""
    elapsed_s = after.at_s - before.at_s
    if elapsed_s <= 0:
        raise ValueError(f"samples not in time order (elapsed {elapsed_s} s)")
    common = sorted(set(before.ifaces) & set(after.ifaces))

    def delta(attr: str) -> float:
        total: int = sum(
            int(getattr(after.ifaces[n], attr)) - int(getattr(before.ifaces[n], attr))
            for n in common
        )
        return total / elapsed_s

    return LinkRate(
        elapsed_s=elapsed_s,
        rx_pps=delta("rx_packets"),
        tx_pps=delta("tx_packets"),
        rx_bytes_per_s=delta("rx_bytes"),
        tx_bytes_per_s=delta("tx_bytes"),
    )


# ---- readers ----


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from exc


def sample_process(pid: int) -> ProcessUsage:
    """One reading of `pid` from /proc; UsageError when it is gone."""
    at_s = time.monotonic()
    cpu_s, children_cpu_s, threads = parse_stat(_read(f"/proc/{pid}/stat"))
    status = parse_kb_fields(_read(f"/proc/{pid}/status"))
    pss: int | None = None
    with contextlib.suppress(UsageError):
        pss = parse_kb_fields(_read(f"/proc/{pid}/smaps_rollup")).get("Pss")
    return ProcessUsage(
        pid=pid,
        at_s=at_s,
        cpu_s=cpu_s,
        children_cpu_s=children_cpu_s,
        rss_bytes=status.get("VmRSS", 0),
        rss_anon_bytes=status.get("RssAnon", 0),
        rss_file_bytes=status.get("RssFile", 0) + status.get("RssShmem", 0),
        pss_bytes=pss,
        locked_bytes=status.get("VmLck", 0),
        threads=threads,
    )


def sample_links(lab: Lab, node: str, *, pid: int | None = None) -> LinkCounters:
    """Counters of every interface of `node` but lo.

    Read from ``/proc/PID/net/dev`` of `pid` (or of any process in the node's namespace):
    no netlink socket, no fork. A namespace with no process in it is read over netlink.
    """
    pids: Sequence[int] = [pid] if pid is not None else lab.pids(node)
    for candidate in pids:
        try:
            text = _read(f"/proc/{candidate}/net/dev")
        except UsageError:
            continue
        at_s = time.monotonic()
        counters = parse_net_dev(text)
        return LinkCounters(at_s, {k: v for k, v in counters.items() if k not in IGNORED_IFACES})
    return _links_over_netlink(lab, node)


def _links_over_netlink(lab: Lab, node: str) -> LinkCounters:
    from pyroute2 import NetNS

    with contextlib.closing(NetNS(lab.ns(node), flags=0)) as ns:
        at_s = time.monotonic()
        links: list[Any] = list(ns.get_links())
    out: dict[str, IfaceCounters] = {}
    for link in links:
        name = str(link.get("IFLA_IFNAME"))
        stats = link.get("IFLA_STATS64") or link.get("IFLA_STATS")
        if name in IGNORED_IFACES or stats is None:
            continue
        out[name] = IfaceCounters(
            rx_packets=int(stats["rx_packets"]),
            tx_packets=int(stats["tx_packets"]),
            rx_bytes=int(stats["rx_bytes"]),
            tx_bytes=int(stats["tx_bytes"]),
        )
    return LinkCounters(at_s, out)
