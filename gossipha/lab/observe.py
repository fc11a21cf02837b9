"""What a user of the cluster sees: a client polling the VIP, a sampler of who holds it.

The client runs in the client namespace as ``python -m gossipha.lab.observe client ...``,
one fresh HTTP connection every 20 ms, one JSON line per request (CLOCK_MONOTONIC is shared
by all namespaces, so its times compare with the sampler's). The sampler is a thread asking
master and slave over netlink whether the VIP is on an interface that is up. `summarize`
turns both logs into the numbers the failure tests report: the longest outage and the
instants when two nodes held the VIP. Everything is bounded in count and duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossipha.lab.topology import TUTORIAL_VIP, Lab, LabError

DEFAULT_INTERVAL_S = 0.02
DEFAULT_TIMEOUT_S = 0.2
MAX_SAMPLES = 100_000
PAGE_MARKERS = (("master", "master server"), ("slave", "slave server"))


@dataclass(frozen=True, slots=True)
class ClientSample:
    """One request: when it started, who answered (None: error/timeout), how long it took."""

    t_s: float
    who: str | None
    latency_s: float


@dataclass(frozen=True, slots=True)
class HolderSample:
    """Which nodes had the VIP on an up interface at `t_s`.

    The nodes are read one after another, twice (A B A B): no netlink read spans two
    namespaces at once, so one pass alone cannot tell "both at once" from "one, then the
    other" during a clean handover. `holders`: the nodes seen holding in both passes.
    `dual`: two nodes held at one instant for certain (one held at both of its reads
    around the other's read that saw it holding).
    """

    t_s: float
    holders: tuple[str, ...]
    dual: bool = False


@dataclass(frozen=True, slots=True)
class Summary:
    requests: int
    answered: int
    by_node: dict[str, int]
    longest_outage_s: float
    outage_started_s: float | None
    dual_holder_samples: int
    dual_holder_first_s: float | None
    switches: tuple[tuple[float, str | None, str | None], ...] = field(default=())


# ---- the client (runs inside the client namespace) ----


def classify(body: str) -> str | None:
    for name, marker in PAGE_MARKERS:
        if marker in body:
            return name
    return None


def http_get(
    host: str,
    port: int,
    path: str,
    timeout_s: float,
    *,
    sock: socket.socket | None = None,
    max_bytes: int = 256 * 1024,
) -> bytes | None:
    """The body of a 200 answer to a plain HTTP/1.0 GET of `path`, or None on any error,
    other status or timeout (all within `timeout_s`); at most `max_bytes` are read.

    `sock` is an unconnected TCP socket to use (e.g. made in another namespace); closed here.
    """
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    size = 0
    try:
        if sock is None:
            conn = socket.create_connection((host, port), timeout=timeout_s)
        else:
            conn = sock
            try:
                conn.settimeout(timeout_s)
                conn.connect((host, port))
            except OSError:
                conn.close()
                raise
        with conn:
            conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            while size <= max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                conn.settimeout(left)
                data = conn.recv(65536)
                if not data:
                    break
                chunks.append(data)
                size += len(data)
    except OSError:
        return None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    if not status_line.startswith(b"HTTP/1.") or b" 200 " not in status_line:
        return None
    return body


def http_get_once(
    host: str, port: int, timeout_s: float, *, sock: socket.socket | None = None
) -> str | None:
    """Who answered a GET / (the page's marker), or None on any error within `timeout_s`."""
    body = http_get(host, port, "/", timeout_s, sock=sock)
    return None if body is None else classify(body.decode("latin-1"))


MAX_IN_FLIGHT = 32  # requests outstanding at once (timeout / interval is about 10)


def run_client(
    host: str,
    port: int,
    *,
    interval_s: float,
    timeout_s: float,
    duration_s: float,
    out: Any,
) -> int:
    """A new request every `interval_s` for `duration_s` (at most MAX_SAMPLES), whether or
    not earlier ones have answered; one JSON line each.

    Issuing on schedule, not after the previous answer, is what lets an outage shorter
    than `timeout_s` show: a request caught in the switch fails late, but the next ones,
    sent 20 ms apart, are answered by the new holder.
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    workers: list[threading.Thread] = []

    def request(t_s: float) -> None:
        try:
            who = http_get_once(host, port, timeout_s)
            line = json.dumps({"t": t_s, "who": who, "lat": time.monotonic() - t_s}) + "\n"
            with lock:
                out.write(line)
                out.flush()
        finally:
            slots.release()

    start_s = time.monotonic()
    count = 0
    while count < MAX_SAMPLES and not stop.is_set():
        due_s = start_s + count * interval_s
        now_s = time.monotonic()
        if now_s - start_s >= duration_s:
            break
        if due_s > now_s:
            stop.wait(due_s - now_s)
            continue
        count += 1
        if not slots.acquire(blocking=False):
            with lock:  # every slot is stuck: this request counts as unanswered
                out.write(json.dumps({"t": now_s, "who": None, "lat": 0.0}) + "\n")
                out.flush()
            continue
        worker = threading.Thread(target=request, args=(now_s,), daemon=True)
        worker.start()
        workers.append(worker)
        workers = [w for w in workers if w.is_alive()]
    for worker in workers:
        worker.join(timeout_s + 1.0)
    return 0


def fetch(lab: Lab, node: str, host: str, *, port: int = 80, timeout_s: float = 1.0) -> str | None:
    """One request from inside `node` (a socket made in its namespace): who answered."""
    sock = lab.socket(node, socket.AF_INET, socket.SOCK_STREAM)
    return http_get_once(host, port, timeout_s, sock=sock)


def read_client_log(path: Path) -> list[ClientSample]:
    samples: list[ClientSample] = []
    with contextlib.suppress(FileNotFoundError), path.open() as fh:
        for line in fh:
            try:
                rec = json.loads(line)
                samples.append(ClientSample(float(rec["t"]), rec["who"], float(rec["lat"])))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by SIGKILL
    return samples


class Client:
    """The client process in the lab; `await client.run()` or `start()`/`stop()`."""

    def __init__(
        self,
        lab: Lab,
        *,
        host: str = str(TUTORIAL_VIP.ip),
        port: int = 80,
        node: str = "client",
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        duration_s: float = 10.0,
    ) -> None:
        self.lab = lab
        self.node = node
        self.duration_s = duration_s
        self.log_path = lab.workdir / f"client-{os.getpid()}-{id(self):x}.jsonl"
        self._argv = [
            sys.executable,
            "-m",
            "gossipha.lab.observe",
            "client",
            host,
            "--port",
            str(port),
            "--interval-s",
            str(interval_s),
            "--timeout-s",
            str(timeout_s),
            "--duration-s",
            str(duration_s),
        ]
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: Any = None

    def start(self) -> None:
        assert self._proc is None, "client already started"
        self._out = self.log_path.open("wb")
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        self._proc = self.lab.spawn(self.node, self._argv, stdout=self._out, env=env)

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the client to finish its duration (bounded: duration + 10 s)."""
        assert self._proc is not None
        limit_s = self.duration_s + 10.0 if timeout_s is None else timeout_s
        try:
            self._proc.wait(timeout=limit_s)
        finally:
            self.stop()

    def stop(self) -> None:
        if self._proc is not None:
            self.lab.stop(self._proc)
        if self._out is not None:
            self._out.close()
            self._out = None

    def samples(self) -> list[ClientSample]:
        return read_client_log(self.log_path)

    async def run(self) -> list[ClientSample]:
        self.start()
        try:
            await asyncio.to_thread(self.wait)
        finally:
            self.stop()
        return self.samples()


# ---- the sampler (a thread in this process) ----


class HolderSampler:
    """Every `interval_s`, which of `nodes` hold `address` on an up interface.

    A thread, since each probe is two blocking netlink round trips per node; bounded by
    `duration_s` and MAX_SAMPLES, stopped early by `stop()`.
    """

    def __init__(
        self,
        lab: Lab,
        address: str = str(TUTORIAL_VIP.ip),
        *,
        nodes: Sequence[str] = ("master", "slave"),
        interval_s: float = DEFAULT_INTERVAL_S,
        duration_s: float = 10.0,
    ) -> None:
        self.lab = lab
        self.address = ipaddress.ip_address(address)
        self.nodes = tuple(nodes)
        self.interval_s = interval_s
        self.duration_s = duration_s
        self.samples: list[HolderSample] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gha-holder-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def failure(self) -> str | None:
        """Why these samples prove nothing, or None: a sampler that died or never sampled
        reads as "no two holders", which must not pass for evidence."""
        if self.error is not None:
            return f"holder sampler failed: {type(self.error).__name__}: {self.error}"
        if not self.samples:
            return "holder sampler collected no samples"
        return None

    def _run(self) -> None:
        from pyroute2 import NetNS

        handles: dict[str, Any] = {}
        try:
            for node in self.nodes:
                handles[node] = NetNS(self.lab.ns(node), flags=0)
            start_s = time.monotonic()
            while len(self.samples) < MAX_SAMPLES and not self._stop.is_set():
                t_s = time.monotonic()
                if t_s - start_s >= self.duration_s:
                    break
                first = [_holds(h, self.address) for h in handles.values()]
                second = [_holds(h, self.address) for h in handles.values()]
                self.samples.append(sandwich(self.nodes, t_s, first, second))
                self._stop.wait(max(0.0, t_s + self.interval_s - time.monotonic()))
        except Exception as exc:  # a namespace torn down under us ends sampling
            self.error = exc
        finally:
            for h in handles.values():
                with contextlib.suppress(Exception):
                    h.close()

    async def run(self) -> list[HolderSample]:
        self.start()
        try:
            await asyncio.to_thread(self._thread.join, self.duration_s + 10.0)
        finally:
            self.stop()
        return self.samples


def sandwich(
    nodes: Sequence[str], t_s: float, first: Sequence[bool], second: Sequence[bool]
) -> HolderSample:
    """One sample from two passes of reads in `nodes` order (see HolderSample). For nodes
    i before j the reads go i1 j1 i2 j2: i held over j1 if i1 and i2; j held over i2 if
    j1 and j2."""
    dual = False
    for i in range(len(nodes)):
        for j in range(i + 1, len(nodes)):
            i_over_j1 = first[i] and second[i] and first[j]
            j_over_i2 = first[j] and second[j] and second[i]
            dual = dual or i_over_j1 or j_over_i2
    holders = tuple(n for n, a, b in zip(nodes, first, second, strict=True) if a and b)
    return HolderSample(t_s, holders, dual)


def _holds(ns: Any, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    for msg in ns.get_addr(family=family):
        if msg.get("IFA_ADDRESS") != str(address):
            continue
        links = ns.get_links(msg["index"])
        if links and links[0]["flags"] & 0x1:  # IFF_UP
            return True
    return False


# ---- summary (pure) ----


def summarize(clients: Sequence[ClientSample], holders: Sequence[HolderSample]) -> Summary:
    """Longest outage: from the last answer before a failure run to the first after it
    (or to the last request if it never came back). Dual holders: samples where two nodes
    held the VIP at one instant for certain (HolderSample.dual)."""
    ordered = sorted(clients, key=lambda s: s.t_s)
    by_node: dict[str, int] = {}
    switches: list[tuple[float, str | None, str | None]] = []
    longest_s, outage_from = 0.0, None
    last_ok_s = ordered[0].t_s if ordered else 0.0
    failing = False
    previous: str | None = None
    for sample in ordered:
        if sample.who is None:
            failing = True
            continue
        by_node[sample.who] = by_node.get(sample.who, 0) + 1
        if previous is not None and sample.who != previous:
            switches.append((sample.t_s, previous, sample.who))
        previous = sample.who
        if failing and sample.t_s - last_ok_s > longest_s:
            longest_s, outage_from = sample.t_s - last_ok_s, last_ok_s
        failing = False
        last_ok_s = sample.t_s
    if failing and ordered and ordered[-1].t_s - last_ok_s > longest_s:
        longest_s, outage_from = ordered[-1].t_s - last_ok_s, last_ok_s
    dual = [h for h in holders if h.dual]
    return Summary(
        requests=len(ordered),
        answered=sum(by_node.values()),
        by_node=by_node,
        longest_outage_s=longest_s,
        outage_started_s=outage_from,
        dual_holder_samples=len(dual),
        dual_holder_first_s=dual[0].t_s if dual else None,
        switches=tuple(switches),
    )


async def observe(
    lab: Lab, duration_s: float, *, interval_s: float = DEFAULT_INTERVAL_S
) -> tuple[list[ClientSample], list[HolderSample], Summary]:
    """Run client and sampler together for `duration_s`; both stop on cancellation.
    LabError when the sampler failed: its empty or cut-short samples would read as "no
    two holders"."""
    client = Client(lab, interval_s=interval_s, duration_s=duration_s)
    sampler = HolderSampler(lab, interval_s=interval_s, duration_s=duration_s)
    async with asyncio.TaskGroup() as tg:
        c_task = tg.create_task(client.run())
        h_task = tg.create_task(sampler.run())
    clients, holders = c_task.result(), h_task.result()
    blind = sampler.failure()
    if blind is not None:
        raise LabError(blind)
    return clients, holders, summarize(clients, holders)


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gossipha.lab.observe")
    sub = parser.add_subparsers(dest="command", required=True)
    client = sub.add_parser("client", help="poll http://HOST:PORT/ and log who answers")
    client.add_argument("host")
    client.add_argument("--port", type=int, default=80)
    client.add_argument("--interval-s", type=float, default=DEFAULT_INTERVAL_S)
    client.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S)
    client.add_argument("--duration-s", type=float, default=10.0)
    ns = parser.parse_args(args)
    return run_client(
        ns.host,
        ns.port,
        interval_s=ns.interval_s,
        timeout_s=ns.timeout_s,
        duration_s=ns.duration_s,
        out=sys.stdout,
    )


if __name__ == "__main__":
    sys.exit(main())
