"""A hostile flood at the master's UDP 694 while two real agents run: nothing moves.

The tutorial's ha.d with the scaled-down timings (keepalive 200ms, warntime 500ms,
deadtime 2s, initdead 3s). Once the master serves, real slave->master packets are captured
on the master's eth1; then a flooder in the ping node's namespace (on the heartbeat
network, no key) sends, as fast as one core can, for at most FLOOD_S seconds and
FLOOD_MAX_PACKETS packets: garbage, truncated packets, a wrong cluster id, a foreign major
version, unknown senders and key ids, oversized datagrams, packets claiming to be the slave
with a bad MAC, and replays of the captured packets. Checks: the master holds the VIP the
whole time and the slave never does (the holder sampler), every kind of junk is counted
under its own reason in the master's /metrics, and its log got a bounded number of reject
lines (rate-limited), not one per packet.

Run this file as a script to be the flooder (the test spawns it inside the lab).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import sys
import time
from pathlib import Path

FLOOD_S = 8.0
FLOOD_MAX_PACKETS = 2_000_000
MASTER_HB = "192.168.17.50"
SLAVE_HB = "192.168.17.51"
PORT = 694


def flood(
    corpus_path: Path, target: str, port: int, max_packets: int, max_s: float
) -> dict[str, float]:
    """Send the corpus round-robin at `target` until `max_packets` or `max_s`, whichever first."""
    data = corpus_path.read_bytes()
    packets: list[bytes] = []
    at = 0
    while at < len(data):
        (size,) = struct.unpack_from(">H", data, at)
        packets.append(data[at + 2 : at + 2 + size])
        at += 2 + size
    assert packets and max_packets <= FLOOD_MAX_PACKETS and max_s <= FLOOD_S
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    dest = (target, port)
    sent = errors = 0
    count = len(packets)
    start = time.monotonic()
    deadline = start + max_s
    while sent + errors < max_packets:
        if (sent + errors) & 1023 == 0 and time.monotonic() >= deadline:
            break
        try:
            sock.sendto(packets[(sent + errors) % count], dest)
            sent += 1
        except OSError:  # ENOBUFS and the like: the sender's own queue is full
            errors += 1
    elapsed_s = time.monotonic() - start
    return {"sent": sent, "errors": errors, "elapsed_s": elapsed_s, "kinds": count}


if __name__ == "__main__":
    _corpus, _target, _port, _max_packets, _max_s, _out = sys.argv[1:7]
    result = flood(Path(_corpus), _target, int(_port), int(_max_packets), float(_max_s))
    Path(_out).write_text(json.dumps(result))
    sys.exit(0)


# ---------------------------------------------------------------------- the test

import pytest  # noqa: E402

from gossipha.config.model import AuthKey, AuthMethod  # noqa: E402
from gossipha.lab import Lab  # noqa: E402
from gossipha.lab.observe import HolderSampler  # noqa: E402
from gossipha.lab.scenarios import child_env  # noqa: E402
from gossipha.lab.topology import TUTORIAL_VIP  # noqa: E402
from gossipha.wire.codec import HEADER, MAX_PACKET_BYTES, seal  # noqa: E402
from tests.netns.helpers import Agents  # noqa: E402
from tests.netns.helpers import holds_vip as _holds  # noqa: E402
from tests.netns.helpers import wait_until as _wait  # noqa: E402

pytestmark = pytest.mark.netns

VIP = str(TUTORIAL_VIP.ip)
METRICS_URL = "http://127.0.0.1:9694/metrics"
# Reject lines the master may log during the flood: one per (reason, peer) per 60 s, so
# at most len(RejectReason) x (nodes + 1) = 45; anything near one per packet is a storm.
MAX_REJECT_LINES = 45
EXPECTED_REASONS = (
    "bad_magic",
    "malformed",
    "too_large",
    "bad_version",
    "wrong_cluster",
    "unknown_sender",
    "unknown_key",
    "bad_mac",
    "replay",
)


def capture(lab: Lab, node: str, source: str, want: int, bound_s: float) -> list[bytes]:
    """UDP payloads to port 694 from `source`, as received on `node`'s eth1 (AF_PACKET)."""
    sock = lab.socket(node, socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    got: list[bytes] = []
    try:
        sock.bind(("eth1", 0x0800))
        sock.settimeout(0.2)
        deadline = time.monotonic() + bound_s
        while len(got) < want and time.monotonic() < deadline:
            try:
                frame = sock.recv(2048)
            except TimeoutError:
                continue
            ihl = (frame[0] & 0x0F) * 4
            if frame[9] != 17 or socket.inet_ntoa(frame[12:16]) != source:
                continue
            (dport,) = struct.unpack_from(">H", frame, ihl + 2)
            if dport == PORT:
                got.append(frame[ihl + 8 :])
    finally:
        sock.close()
    return got


def corpus(real: list[bytes], rng: random.Random) -> dict[str, list[bytes]]:
    """Junk of every kind, by the reject reason the master should count it under."""
    sample = real[0]
    _magic, _maj, _min, _flags, key_id, cluster, inc, seq, _blen, _slen = HEADER.unpack_from(sample)
    forged_key = AuthKey(key_id, AuthMethod.MD5, b"not the secret")  # the tutorial's key 3 is md5
    body = b'{"t":"heartbeat","to":"masternginx"}'

    def forged(sender: bytes, key: AuthKey, n: int) -> bytes:
        return seal(
            cluster=cluster, sender=sender, incarnation=inc, seq=seq + 1000 + n, body=body, key=key
        )

    kinds: dict[str, list[bytes]] = {
        "bad_magic": [rng.randbytes(rng.randint(35, 1400)) for _ in range(16)],
        "malformed": [p[: rng.randint(0, len(p) - 1)] for p in real for _ in range(2)],
        "too_large": [b"GSHA" + rng.randbytes(MAX_PACKET_BYTES - 3)],
        "bad_version": [p[:4] + b"\x02" + p[5:] for p in real[:4]],
        "wrong_cluster": [p[:8] + rng.randbytes(8) + p[16:] for p in real[:4]],
        "unknown_sender": [forged(b"mallory", forged_key, n) for n in range(4)],
        "unknown_key": [
            forged(b"slavenginx", AuthKey(200, AuthMethod.SHA256, b"x"), n) for n in range(4)
        ],
        "bad_mac": [forged(b"slavenginx", forged_key, n) for n in range(16)]
        + [p[:-1] + bytes([p[-1] ^ 1]) for p in real],
        "replay": list(real),
    }
    for kind, items in kinds.items():
        assert items, kind
    return kinds


def write_corpus(path: Path, kinds: dict[str, list[bytes]]) -> int:
    packets = [p for items in kinds.values() for p in items]
    random.Random(7).shuffle(packets)
    path.write_bytes(b"".join(struct.pack(">H", len(p)) + p for p in packets))
    return len(packets)


def scrape_rejects(lab: Lab, node: str) -> dict[str, float]:
    out = lab.run(
        node, ["curl", "-sS", "--max-time", "2", METRICS_URL], uts=False, check=False, timeout_s=5
    )
    found: dict[str, float] = {}
    for line in out.stdout.splitlines():
        if line.startswith("gossipha_packets_rejected_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(value)
    return found


def test_flood_at_the_master_moves_nothing(lab: Lab, agents: Agents) -> None:
    agents.start_pair(mlock=False)
    real = capture(lab, "master", SLAVE_HB, want=8, bound_s=4.0)
    assert len(real) >= 4, f"captured {len(real)} slave->master packets"
    time.sleep(0.3)  # every captured packet has reached the agent: replays now are replays
    kinds = corpus(real, random.Random(694))
    corpus_path = agents.root / "corpus.bin"
    distinct = write_corpus(corpus_path, kinds)
    before = scrape_rejects(lab, "master")
    log_before = len(agents.log("master"))

    sampler = HolderSampler(lab, VIP, interval_s=0.02, duration_s=FLOOD_S + 10.0)
    sampler.start()
    result_path = agents.root / "flood.json"
    try:
        flooder = agents.spawn(
            "flooder",
            "ping",
            [
                sys.executable,
                str(Path(__file__).resolve()),
                str(corpus_path),
                MASTER_HB,
                str(PORT),
                str(FLOOD_MAX_PACKETS),
                str(FLOOD_S),
                str(result_path),
            ],
            agents.root / "flooder.log",
            env=child_env(),
            uts=False,
        )
        assert flooder.wait(timeout=FLOOD_S + 10.0) == 0, agents.tail("flooder")
        time.sleep(2.5)  # past deadtime after the flood: a late effect would show now
    finally:
        sampler.stop()
    stats = json.loads(result_path.read_text())
    rate = stats["sent"] / stats["elapsed_s"]

    assert sampler.error is None, sampler.error
    assert sampler.samples and all(s.holders == ("master",) for s in sampler.samples), [
        s for s in sampler.samples if s.holders != ("master",)
    ][:5]
    assert _holds(lab, "master") and not _holds(lab, "slave")

    _wait(
        "rejects exported",
        lambda: sum(scrape_rejects(lab, "master").values()) > sum(before.values()),
        3.0,
    )
    time.sleep(1.2)  # /metrics is refreshed once a second
    after = scrape_rejects(lab, "master")
    counted = {r: after.get(r, 0.0) - before.get(r, 0.0) for r in after}
    missing = [r for r in EXPECTED_REASONS if counted.get(r, 0.0) <= 0]
    assert not missing, f"not counted: {missing}; counted {counted}"
    total = sum(counted.values())

    text = agents.log("master")[log_before:]
    reject_lines = [
        ln for ln in text.splitlines() if "packet rejected" in ln or "rejects suppressed" in ln
    ]
    peer_dead = text.count("peer_dead")
    udp = lab.run("master", ["cat", "/proc/net/snmp"], uts=False).stdout.splitlines()
    udp_rows = [ln.split() for ln in udp if ln.startswith("Udp:")]
    kernel = dict(zip(udp_rows[0][1:], udp_rows[1][1:], strict=True))
    print(
        f"\nflood: {stats['sent']} packets ({distinct} distinct) in {stats['elapsed_s']:.2f}s = "
        f"{rate:,.0f}/s from one core; master counted {total:,.0f} rejects "
        f"({total / stats['sent']:.0%} of sent; the rest dropped by the kernel); "
        f"{len(reject_lines)} reject log lines, {len(text)} log bytes; samples "
        f"{len(sampler.samples)}, all master; by reason: "
        + ", ".join(f"{r}={int(v)}" for r, v in sorted(counted.items()) if v)
        + f"; master saw the slave dead {peer_dead} times (phi); kernel RcvbufErrors="
        + kernel.get("RcvbufErrors", "?")
    )
    assert reject_lines, f"no reject logged during the flood:\n{text[-3000:]}"
    assert len(reject_lines) <= MAX_REJECT_LINES, reject_lines[:50]
    assert len(text) < 64 * 1024, f"log grew {len(text)} bytes during the flood"
    for bad in ("lease_lost", "split_brain_risk", "stopping group"):
        assert bad not in text, f"{bad} during the flood:\n{text[-3000:]}"
