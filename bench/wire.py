"""Wire benchmark: packets signed+encoded and verified+decoded per second, on one core.

    python bench/wire.py --json                  # from the repository root
    python bench/wire.py --method md5 --rounds 7

The body is shaped like a gossip heartbeat from a small cluster (a digest entry per member,
the lease, ping reachability): about 450 bytes of JSON. Verification decodes distinct
packets in order (each with its own sequence number), as a receiver sees them, so the
replay window is exercised too. `reject_bad_mac_per_s` is the cost of the most expensive
flood: packets that pass every cheap check and fail only at the MAC.
Rates are per second of CPU time of this process (`time.process_time`), pinned to one core,
so other load on a shared machine does not halve them; `wall_verify_per_s` is the same
verification by the wall clock. Numbers are the median of `--rounds` rounds; results go
to docs/benchmarks.md "## Wire". Exit status 1, with the reason on stderr, when a packet
was not accepted, a forged one was, or a timed phase took no measurable time (its rate
would be infinite: nothing was measured); 2 for --packets or --rounds below 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gossipha.config.model import AuthKey, AuthMethod
from gossipha.wire.codec import Decoder, Encoder, Packet, cluster_id
from gossipha.wire.keyring import Keyring

NODES = ("masternginx", "slavenginx", "witness1")
CLUSTER = cluster_id("nginx")


def heartbeat_body(seq: int) -> dict[str, Any]:
    """A realistic heartbeat: what the core sends every keepalive."""
    return {
        "type": "heartbeat",
        "term": 12,
        "sent_wall_ts": 1732600000.123456 + seq,
        "members": [
            {
                "node": name,
                "incarnation": 1732600000000000 + i,
                "state": "alive",
                "heartbeat": 4711 + seq,
                "role": "member" if i < 2 else "witness",
            }
            for i, name in enumerate(NODES)
        ],
        "lease": {"holder": "masternginx", "term": 12, "remaining_s": 1.75, "votes": 2},
        "groups": {"nginx": {"holder": "masternginx", "state": "running"}},
        "ping": {"192.168.17.1": True},
    }


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def run(method: AuthMethod, packets: int, rounds: int) -> dict[str, Any]:
    key = AuthKey(1, method, b"0123456789abcdef0123456789abcdef")
    ring = Keyring((key,), active=1)
    bodies = [heartbeat_body(i) for i in range(packets)]
    sign, verify, reject, wall = [], [], [], []
    encoded: list[bytes] = []
    for _ in range(rounds):
        enc = Encoder(cluster=CLUSTER, node="masternginx", incarnation=1, keyring=ring)
        start = time.process_time()
        encoded = [enc.encode(body) for body in bodies]
        sign.append(_rate(packets, time.process_time() - start))

        dec = Decoder(
            cluster=CLUSTER, node="slavenginx", incarnation=2, senders=NODES, keyring=ring
        )
        start = time.process_time()
        wall_start = time.perf_counter()
        accepted = sum(isinstance(dec.decode(data, 0.0), Packet) for data in encoded)
        verify.append(_rate(packets, time.process_time() - start))
        wall.append(_rate(packets, time.perf_counter() - wall_start))
        if accepted != packets:  # a receiver drops each packet after use; so do we
            raise SystemExit("benchmark packets were rejected; the numbers would be wrong")

        forged = [data[:-1] + bytes([data[-1] ^ 1]) for data in encoded]
        start = time.process_time()
        passed = sum(isinstance(dec.decode(data, 0.0), Packet) for data in forged)
        reject.append(_rate(packets, time.process_time() - start))
        if passed:
            raise SystemExit(f"wire.py: {passed} forged packets were accepted")
    sample = encoded[len(encoded) // 2]
    return {
        "method": method.value,
        "sign_per_s": round(statistics.median(sign)),
        "verify_per_s": round(statistics.median(verify)),
        "reject_bad_mac_per_s": round(statistics.median(reject)),
        "wall_verify_per_s": round(statistics.median(wall)),
        "body_bytes": len(orjson.dumps(bodies[len(bodies) // 2])),
        "packet_bytes": len(sample),
        "packets_per_round": packets,
        "rounds": rounds,
        "python": platform.python_version(),
        "orjson": orjson.__version__,
        "machine": platform.machine(),
    }


def failures(result: dict[str, Any]) -> list[str]:
    """Rates that measured nothing: an infinite rate is a phase that took no CPU time."""
    rates = ("sign_per_s", "verify_per_s", "reject_bad_mac_per_s", "wall_verify_per_s")
    return [
        f"{k} is {result[k]}: the phase took no measurable time (use more --packets)"
        for k in rates
        if not 0 < result[k] < float("inf")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="sha256", choices=["md5", "sha1", "sha256", "sha512"])
    parser.add_argument("--packets", type=int, default=50_000, help="packets per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.packets < 1 or args.rounds < 1:
        parser.error("--packets and --rounds must be at least 1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as claimed
    result = run(AuthMethod(args.method), args.packets, args.rounds)
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        for name, value in result.items():
            print(f"{name:>22}: {value}")
    problems = failures(result)
    for line in problems:
        print(f"wire.py: FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
