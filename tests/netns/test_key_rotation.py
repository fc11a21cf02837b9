"""Live key changes on two real agents: never an interval where the nodes reject each other.

1. The tutorial's ha.d (md5 key 3, scaled-down timings) moves to a sha256 key 4 with
   install -> use -> remove: each step edits authkeys on one node, reloads it (SIGHUP on the
   master, `gossipha reload --pidfile` on the slave), then does the other node.
2. A native cluster that starts unauthenticated (`crc`) turns authentication on with
   `[auth] mode`: accept-unsigned (key installed) -> sign-accept-both -> enforce, one node
   at a time, by editing gossipha.toml and reloading.

After every single reload: the master holds the VIP and the slave does not, and neither
agent has logged a bad_mac, unknown_key, unsigned or bad_crc reject from its peer. The holder
sampler runs throughout: the VIP never moves and never has two holders. At the end a
captured packet in each direction carries the new key id.
"""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path

import pytest

from gossipha.lab import Lab
from gossipha.lab.observe import HolderSampler
from gossipha.lab.topology import TUTORIAL_VIP
from tests.netns.helpers import Agents
from tests.netns.helpers import holds_vip as _holds

pytestmark = pytest.mark.netns

VIP = str(TUTORIAL_VIP.ip)
# After a reload, watch this long (several keepalives of 200 ms) before the next step.
SETTLE_S = 0.6
PEER_REJECTS = ("reason=bad_mac", "reason=unknown_key", "reason=unsigned", "reason=bad_crc")
HB = {"master": "192.168.17.50", "slave": "192.168.17.51"}
OTHER = {"master": "slave", "slave": "master"}

NATIVE_TOML = """\
[cluster]
name = "rotation"
auto_failback = true

[timings]
keepalive = "200ms"
warntime = "500ms"
deadtime = "2s"
initdead = "3s"

[auth]
keyfile = "authkeys"
allow_unauthenticated = true
{mode}

[nodes.masternginx]
addresses = {{ hb = "192.168.17.50" }}

[nodes.slavenginx]
addresses = {{ hb = "192.168.17.51" }}

[[link]]
name = "hb"
kind = "ucast"
interface = "eth1"

[[ping]]
name = "gw"
addresses = ["192.168.17.1"]
interface = "eth1"

[[group]]
name = "web"
preferred = "masternginx"
resources = [{{ vip = "{vip}", interface = "eth0", label = "eth0:0" }}]
"""


def write_keys(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def key_id_on_wire(lab: Lab, sender: str, bound_s: float = 2.0) -> int:
    """The key id byte of one packet `sender` sends, captured at the receiver's eth1."""
    receiver = OTHER[sender]
    sock = lab.socket(receiver, socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    try:
        sock.bind(("eth1", 0x0800))
        sock.settimeout(0.2)
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            try:
                frame = sock.recv(2048)
            except TimeoutError:
                continue
            ihl = (frame[0] & 0x0F) * 4
            if frame[9] == 17 and socket.inet_ntoa(frame[12:16]) == HB[sender]:
                payload = frame[ihl + 8 :]
                if payload[:4] == b"GSHA":
                    return payload[7]
    finally:
        sock.close()
    raise AssertionError(f"no packet from {sender} within {bound_s}s")


class _Steps:
    """Runs steps; after each, the checks of the module docstring."""

    def __init__(self, lab: Lab, agents: Agents) -> None:
        self.lab = lab
        self.agents = agents
        self.done: list[str] = []

    def check(self, step: str) -> None:
        time.sleep(SETTLE_S)
        where = f"after {step} (steps so far: {self.done})"
        assert _holds(self.lab, "master"), f"master lost the VIP {where}"
        assert not _holds(self.lab, "slave"), f"slave holds the VIP {where}"
        for node in ("master", "slave"):
            text = self.agents.log(node)
            for reject in PEER_REJECTS:
                assert reject not in text, f"{node} logged {reject} {where}:\n{text[-3000:]}"
            for event in ("peer_dead", "lease_lost"):
                assert event not in text, f"{node} logged {event} {where}:\n{text[-3000:]}"
        self.done.append(step)


def _start_pair(lab: Lab, agents: Agents) -> HolderSampler:
    agents.start_pair(mlock=False)
    time.sleep(1.0)  # both sides have heard each other before the first change
    sampler = HolderSampler(lab, VIP, interval_s=0.02, duration_s=60.0)
    sampler.start()
    return sampler


def _sampler_saw_only_master(sampler: HolderSampler) -> None:
    sampler.stop()
    assert sampler.error is None, sampler.error
    moved = [s for s in sampler.samples if s.holders != ("master",)]
    assert sampler.samples and not moved, moved[:5]


def test_rolling_key_change_md5_to_sha256_with_sighup_and_reload(lab: Lab, agents: Agents) -> None:
    keyfile = {node: agents.tutorial_ha_d(node) / "authkeys" for node in ("master", "slave")}
    sampler = _start_pair(lab, agents)
    steps = _Steps(lab, agents)
    new = secrets.token_hex(32)
    old_line = "3 md5 Hello!\n"
    new_line = f"4 sha256 {new}\n"
    how = {"master": "sighup", "slave": "command"}
    try:
        assert key_id_on_wire(lab, "master") == 3
        for node in ("master", "slave"):  # 1. install: verify with key 4, still sign with 3
            write_keys(keyfile[node], "auth 3\n" + old_line + new_line)
            agents.reload(node, how[node])
            assert "reloaded keys=2 active=3" in agents.log(node)
            steps.check(f"install on {node}")
        for node in ("master", "slave"):  # 2. use: sign with 4
            write_keys(keyfile[node], "auth 4\n" + old_line + new_line)
            agents.reload(node, how[node])
            assert "reloaded keys=2 active=4" in agents.log(node)
            assert key_id_on_wire(lab, node) == 4
            steps.check(f"use on {node}")
        for node in ("master", "slave"):  # 3. remove key 3
            write_keys(keyfile[node], "auth 4\n" + new_line)
            agents.reload(node, how[node])
            assert "reloaded keys=1 active=4" in agents.log(node)
            steps.check(f"remove on {node}")
        assert key_id_on_wire(lab, "master") == 4 and key_id_on_wire(lab, "slave") == 4
    finally:
        _sampler_saw_only_master(sampler)


def test_staged_turn_on_of_authentication_with_auth_mode(lab: Lab, agents: Agents) -> None:
    keyfile = {node: agents.root / node / "authkeys" for node in ("master", "slave")}
    for node in ("master", "slave"):
        keyfile[node].parent.mkdir(parents=True, exist_ok=True)
        agents.config[node] = keyfile[node].with_name("gossipha.toml")
        agents.config[node].write_text(NATIVE_TOML.format(mode="", vip=TUTORIAL_VIP))
        write_keys(keyfile[node], "auth 1\n1 crc\n")  # an unauthenticated cluster
    sampler = _start_pair(lab, agents)
    steps = _Steps(lab, agents)
    secret = secrets.token_hex(32)

    def configure(node: str, mode: str) -> None:
        text = NATIVE_TOML.format(mode=f'mode = "{mode}"', vip=TUTORIAL_VIP)
        agents.config[node].write_text(text)

    try:
        assert key_id_on_wire(lab, "master") == 0
        for node in ("master", "slave"):  # 1. key installed, still sending unsigned
            write_keys(keyfile[node], f"auth 2\n1 crc\n2 sha256 {secret}\n")
            configure(node, "accept-unsigned")
            agents.reload(node, "command")
            assert "mode=accept-unsigned" in agents.log(node)
            assert key_id_on_wire(lab, node) == 0
            steps.check(f"accept-unsigned on {node}")
        for node in ("master", "slave"):  # 2. sign, still accept unsigned
            configure(node, "sign-accept-both")
            agents.reload(node, "sighup")
            assert "mode=sign-accept-both" in agents.log(node)
            assert key_id_on_wire(lab, node) == 2
            steps.check(f"sign-accept-both on {node}")
        for node in ("master", "slave"):  # 3. enforce
            configure(node, "enforce")
            agents.reload(node, "command")
            assert "mode=enforce" in agents.log(node)
            steps.check(f"enforce on {node}")
        assert key_id_on_wire(lab, "master") == 2 and key_id_on_wire(lab, "slave") == 2
    finally:
        _sampler_saw_only_master(sampler)
