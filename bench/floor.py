"""The floor under an idle agent's CPU: the native set-up's packets with no agent behind them.

    sudo python bench/floor.py --idle-seconds 60 --json
    sudo python bench/floor.py --modes bare,sealed,agent --idle-seconds 60 --json

In the tutorial's lab, a minimal asyncio process on master and one on slave exchange what
an idle gossipha pair exchanges at native default timings: every keepalive (200 ms) each
sends a heartbeat-sized datagram on eth1 and on eth0 and an ICMP echo to the ping node;
master's heartbeat carries a lease request, which slave answers on the link it came in
on (docs/protocol.md, "Messages"). Each node reads every datagram and echo reply from one
readiness callback, and sends from one loop timer. Modes, one after the other in one lab:

- `bare`: fixed bytes; received datagrams are read and dropped. What CPython's event loop
  and the kernel cost for these packets and wake-ups on this machine.
- `sealed`: every datagram built and checked by gossipha's own codec (gossipha.wire:
  HMAC-SHA256, the replay window, orjson), with a heartbeat body shaped as bench/wire.py's.
- `agent`: the real gossipha-native pair, measured as bench/resources.py does.

What `agent` costs above `sealed` is the core's steps and the runtime around them; what
`sealed` costs above `bare` is the wire. Read the modes as ratios within one run: the
machine is shared. CPU is read from /proc for each node's process (as bench/resources.py).

JSON (stable; fields are only added): idle_s, settle_s, keepalive_s, machine {cpus,
python, load_avg}, target {cpu_fraction_max}, modes {mode: {nodes {node: {cpu_fraction,
tx_pps, rx_pps}}, max_cpu_fraction}}, ratios {agent_over_bare, agent_over_sealed,
sealed_over_bare} (those whose modes ran). Exit status 1, with the reason on stderr, when
a node's process ended early, sent or received nothing, or (mode `agent`) no agent process
was found: then nothing was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from resources import CPU_TARGET, measure_system
from wire import heartbeat_body

from gossipha.config.model import AuthKey, AuthMethod
from gossipha.lab.scenarios import NODES
from gossipha.lab.topology import Lab, sweep_stale
from gossipha.lab.usage import UsageError, link_rate, sample_links, sample_process
from gossipha.runtime.icmp import build_echo
from gossipha.wire.codec import Decoder, Encoder, Packet, cluster_id
from gossipha.wire.keyring import Keyring

MODES = ("bare", "sealed", "agent")
PORT = 694
LINKS = ("eth1", "eth0")
KEEPALIVE_S = 0.2  # gossipha's native default (gossipha/config/native.py)
PING_NODE = "ping"
HOSTNAMES = {"master": "masternginx", "slave": "slavenginx"}
CLUSTER = cluster_id("floor")
KEY = AuthKey(1, AuthMethod.SHA256, b"0123456789abcdef0123456789abcdef")
ANSWER_BODY = {"type": "lease_reply", "group": "nginx", "epoch": 12, "seq": 7, "grant": 0.6}
# A node process ends on its own this long after its planned run, whatever happens.
NODE_GRACE_S = 10.0


# ---------------------------------------------------------------------- one node


class FloorNode:
    """One node's packets at the native rhythm, with (sealed) or without (bare) the codec."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.holder = args.node == "master"
        self.sealed = args.mode == "sealed"
        me, peer = HOSTNAMES[args.node], HOSTNAMES["slave" if self.holder else "master"]
        self.peer_addrs = dict(zip(LINKS, args.peer, strict=True))
        ring = Keyring((KEY,), active=1)
        self.encoder = Encoder(cluster=CLUSTER, node=me, incarnation=1, keyring=ring)
        self.decoder = Decoder(
            cluster=CLUSTER, node=me, incarnation=1, senders=(me, peer), keyring=ring
        )
        self.beat = 0
        self.socks: dict[str, socket.socket] = {}
        for link, addr in zip(LINKS, args.me, strict=True):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((addr, PORT))
            s.setblocking(False)
            self.socks[link] = s
        self.icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.icmp.setblocking(False)
        self.ping_addr = args.ping
        self.keepalive_s = args.keepalive
        # Bare packets: the sealed ones' sizes, so the kernel moves the same bytes; the first
        # byte says what the packet is (a heartbeat carrying a request, or not, or an answer).
        self.bare_beat = (b"R" if self.holder else b"H") + self.encoder.encode(self._body())[1:]
        self.bare_answer = b"A" + self.encoder.encode(ANSWER_BODY)[1:]

    def _body(self) -> dict[str, Any]:
        body = heartbeat_body(self.beat)
        body["lq"] = [{"group": "nginx", "epoch": 12, "seq": self.beat}] if self.holder else []
        return body

    def tick(self, loop: asyncio.AbstractEventLoop, at_s: float) -> None:
        """One keepalive: a heartbeat on each link (sealed one by one, as the agent does)
        and an echo to the ping node; then the next tick, on the same grid."""
        self.beat += 1
        for link, sock in self.socks.items():
            data = self.encoder.encode(self._body()) if self.sealed else self.bare_beat
            sock.sendto(data, (self.peer_addrs[link], PORT))
        echo = build_echo(socket.AF_INET, os.getpid() & 0xFFFF, self.beat & 0xFFFF)
        self.icmp.sendto(echo, (self.ping_addr, 0))
        loop.call_at(at_s + self.keepalive_s, self.tick, loop, at_s + self.keepalive_s)

    def readable(self, link: str) -> None:
        sock = self.socks[link]
        for _ in range(64):
            try:
                data, _addr = sock.recvfrom(2048)
            except BlockingIOError:
                return
            if self.sealed:
                packet = self.decoder.decode(data, time.monotonic())
                if not isinstance(packet, Packet):
                    continue
                asks = bool(packet.body.get("lq"))
            else:
                asks = data[:1] == b"R"
            # The agent answers a request once, on the link its first copy came in on:
            # heartbeats go out on eth1 first.
            if asks and not self.holder and link == LINKS[0]:
                answer = self.encoder.encode(ANSWER_BODY) if self.sealed else self.bare_answer
                sock.sendto(answer, (self.peer_addrs[link], PORT))

    def echo_reply(self) -> None:
        for _ in range(64):
            try:
                self.icmp.recvfrom(2048)
            except BlockingIOError:
                return

    async def run(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        for link, sock in self.socks.items():
            loop.add_reader(sock.fileno(), self.readable, link)
        loop.add_reader(self.icmp.fileno(), self.echo_reply)
        start_s = loop.time() + self.keepalive_s
        loop.call_at(start_s, self.tick, loop, start_s)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


def node_main(args: argparse.Namespace) -> int:
    asyncio.run(FloorNode(args).run(args.run_seconds))
    return 0


# ---------------------------------------------------------------------- the bench


def measure_floor(lab: Lab, mode: str, idle_s: float, settle_s: float) -> dict[str, Any]:
    print(f"== {mode}: starting", file=sys.stderr, flush=True)
    ping = str(lab.address(PING_NODE, "eth0").ip)
    procs = {}
    run_s = settle_s + idle_s + NODE_GRACE_S
    try:
        for node in NODES:
            peer = "slave" if node == "master" else "master"
            argv = [sys.executable, str(Path(__file__).resolve()), "--node", node]
            argv += ["--mode", mode, "--ping", ping, "--keepalive", str(KEEPALIVE_S)]
            argv += ["--run-seconds", str(run_s)]
            argv += ["--me", *(str(lab.address(node, link).ip) for link in LINKS)]
            argv += ["--peer", *(str(lab.address(peer, link).ip) for link in LINKS)]
            procs[node] = lab.spawn(node, argv, stderr=None, uts=False)
        time.sleep(settle_s)
        nodes = _measure_pids(lab, {node: proc.pid for node, proc in procs.items()}, idle_s)
    finally:
        for proc in procs.values():
            lab.stop(proc)
    for node, data in nodes.items():
        print(
            f"   {node}: cpu {100 * data['cpu_fraction']:.2f}%, "
            f"tx {data['tx_pps']}/s, rx {data['rx_pps']}/s",
            file=sys.stderr,
            flush=True,
        )
    return {"nodes": nodes, "max_cpu_fraction": max(n["cpu_fraction"] for n in nodes.values())}


def _measure_pids(lab: Lab, pids: dict[str, int], idle_s: float) -> dict[str, dict[str, Any]]:
    """CPU and packet rates of each node's process over the same `idle_s`."""
    first = {node: sample_process(pid) for node, pid in pids.items()}
    links_before = {node: sample_links(lab, node, pid=pid) for node, pid in pids.items()}
    time.sleep(idle_s)
    links_after = {node: sample_links(lab, node, pid=pid) for node, pid in pids.items()}
    result = {}
    for node, pid in pids.items():
        try:
            last = sample_process(pid)
        except UsageError as exc:
            raise SystemExit(f"the {node} floor process ended early: {exc}") from exc
        links = link_rate(links_before[node], links_after[node])
        result[node] = {
            "cpu_fraction": round(
                (last.cpu_s - first[node].cpu_s) / (last.at_s - first[node].at_s), 5
            ),
            "tx_pps": round(links.tx_pps, 1),
            "rx_pps": round(links.rx_pps, 1),
        }
    return result


def _agent(lab: Lab, idle_s: float, settle_s: float) -> dict[str, Any]:
    measured = measure_system(lab, "gossipha-native", idle_s, settle_s)
    nodes = {
        n: {k: d[k] for k in ("cpu_fraction", "tx_pps", "rx_pps", "processes")}
        for n, d in measured["nodes"].items()
    }
    return {"nodes": nodes, "max_cpu_fraction": measured["max"]["cpu_fraction"]}


def failures(modes: dict[str, Any]) -> list[str]:
    """Modes that measured nothing: a node that sent or received no packet (its process
    never ran its rhythm), or an agent mode that found no agent process."""
    out: list[str] = []
    if not modes:
        out.append("no mode ran (measured nothing)")
    for mode, data in modes.items():
        if not data["nodes"]:
            out.append(f"{mode}: no node measured")
        for node, n in data["nodes"].items():
            if n.get("processes", 1) == 0:
                out.append(f"{mode} {node}: no agent process found (measured nothing)")
            elif n["tx_pps"] <= 0 or n["rx_pps"] <= 0:
                out.append(
                    f"{mode} {node}: sent {n['tx_pps']}/s and received {n['rx_pps']}/s "
                    "(measured nothing)"
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    # One node's process (the bench starts these in the lab's namespaces).
    parser.add_argument("--node", choices=NODES, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES[:2], help=argparse.SUPPRESS)
    parser.add_argument("--ping", help=argparse.SUPPRESS)
    parser.add_argument("--keepalive", type=float, default=KEEPALIVE_S, help=argparse.SUPPRESS)
    parser.add_argument("--run-seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--me", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--peer", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.node is not None:
        return node_main(args)

    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: expected some of {', '.join(MODES)}, got {args.modes!r}")
    if args.idle_seconds <= 0 or args.settle < 0:
        parser.error("--idle-seconds must be positive and --settle not negative")
    if os.geteuid() != 0:
        raise SystemExit("bench/floor.py builds network namespaces: run it as root")
    sweep_stale()
    results: dict[str, Any] = {}
    with Lab() as lab:
        for mode in modes:
            if mode == "agent":
                results[mode] = _agent(lab, args.idle_seconds, args.settle)
            else:
                results[mode] = measure_floor(lab, mode, args.idle_seconds, args.settle)
    ratios = {}
    for top, bottom in (("agent", "bare"), ("agent", "sealed"), ("sealed", "bare")):
        if top in results and bottom in results:
            low = results[bottom]["max_cpu_fraction"]
            ratio = results[top]["max_cpu_fraction"] / low if low > 0 else None
            ratios[f"{top}_over_{bottom}"] = None if ratio is None else round(ratio, 2)
    report = {
        "idle_s": args.idle_seconds,
        "settle_s": args.settle,
        "keepalive_s": KEEPALIVE_S,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "target": {"cpu_fraction_max": CPU_TARGET},
        "modes": results,
        "ratios": ratios,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for mode, data in results.items():
            for node, d in data["nodes"].items():
                print(f"{mode:7s} {node:7s} cpu {100 * d['cpu_fraction']:.2f}%")
        print("ratios:", ratios)
    problems = failures(results)
    for line in problems:
        print(f"floor.py: FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
