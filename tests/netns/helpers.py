"""What the real-network tests share: bounded waits, who holds the VIP, and the gossipha
processes one test runs in the lab (`Agents`, handed out by the `agents` fixture)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gossipha.lab import Lab
from gossipha.lab.scenarios import FAST, VIP, child_env, write_ha_d
from gossipha.lab.topology import TUTORIAL_VIP

VIP_NODES = ("master", "slave")  # the nodes whose groups may put the VIP on eth0
STARTUP_BOUND_S = 15.0  # agents started -> the master holds the VIP
STOP_BOUND_S = 10.0  # SIGTERM -> exited, per process, before SIGKILL
RELOAD_BOUND_S = 5.0
LOG_TAIL_CHARS = 3000  # of a log quoted in a failure message


def wait_until(
    what: str | Callable[[], str], check: Callable[[], bool], bound_s: float, step_s: float = 0.02
) -> float:
    """Poll `check` until true; the seconds it took, or AssertionError naming `what` (a
    callable is asked on failure, so it can quote logs as they are then)."""
    start = time.monotonic()
    while time.monotonic() - start < bound_s:
        if check():
            return time.monotonic() - start
        time.sleep(step_s)
    raise AssertionError(f"not within {bound_s}s: {what() if callable(what) else what}")


def vip_line(lab: Lab, node: str, *, up: bool = True) -> str:
    """`ip -o addr` line of the VIP in `node` ('' when absent); only on an up interface if `up`."""
    argv = ["ip", "-o", "-4", "addr", "show", *(["up"] if up else []), "to", f"{VIP}/32"]
    return lab.run(node, argv, uts=False, check=False).stdout.strip()


def holds_vip(lab: Lab, node: str, *, up: bool = True) -> bool:
    """Whether `node` has the VIP configured (on an interface that is up, if `up`)."""
    return bool(vip_line(lab, node, up=up))


class Agents:
    """The processes one test runs in the lab (gossipha agents and witnesses by node, other
    tools by name), with their files and logs under `root`.

    Each is started with `Lab.spawn`, so it is tracked by PID, and `close()` stops them all
    by PID (SIGTERM, SIGKILL after STOP_BOUND_S). The `agents` fixture calls `close()` after
    the test, also when it failed; `close()` also brings up links a crash took down and
    removes a VIP an agent left, so the next test of the module starts from a clean lab.
    """

    def __init__(self, lab: Lab, root: Path) -> None:
        self.lab = lab
        self.root = root
        # By name: an agent's or witness's name is its node's.
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.nodes: dict[str, str] = {}
        self.logs: dict[str, Path] = {}
        # What each node runs with (`--config`); `start` writes the tutorial's ha.d if unset.
        self.config: dict[str, Path] = {}
        self.ha_d: dict[str, Path] = {}
        self.nginx_root: dict[str, Path] = {}

    def tutorial_ha_d(self, node: str) -> Path:
        """The tutorial's /etc/ha.d for `node` with the FAST profile; becomes its config."""
        ha_d, nginx_root = write_ha_d(node, self.root, FAST)
        self.config[node] = self.ha_d[node] = ha_d
        self.nginx_root[node] = nginx_root
        return ha_d

    def state_dir(self, node: str) -> Path:
        """GOSSIPHA_STATE_DIR per node: all nodes share the host's filesystem."""
        return self.root / node / "state"

    def admin_socket(self, node: str) -> Path:
        """Per node, under `root` (not /run/gossipha), for the same reason."""
        return self.root / node / "admin.sock"

    def start(
        self, node: str, *extra: str, command: str = "agent", mlock: bool = True
    ) -> subprocess.Popen[bytes]:
        """`gossipha COMMAND` (agent or witness) in `node`'s namespace, named `node`: its
        config, its hostname as node name, its own admin socket, `extra` options appended;
        output to ROOT/NODE/COMMAND.log."""
        config = self.config[node] if node in self.config else self.tutorial_ha_d(node)
        argv = [sys.executable, "-m", "gossipha", command, "--config", str(config)]
        argv += ["--node-name", self.lab.hosts[node].hostname]
        argv += ["--admin-socket", str(self.admin_socket(node))]
        argv += [*([] if mlock else ["--no-mlock"]), *extra]
        env = child_env()
        env["GOSSIPHA_STATE_DIR"] = str(self.state_dir(node))
        return self.spawn(node, node, argv, self.root / node / f"{command}.log", env=env)

    def start_pair(self, *, mlock: bool = True) -> None:
        """The tutorial's start-up: the master, the slave 0.3 s later, until the master holds
        the VIP."""
        self.start("master", mlock=mlock)
        time.sleep(0.3)
        self.start("slave", mlock=mlock)
        wait_until(
            lambda: "master holds the VIP\n" + self.tail("master"),
            lambda: holds_vip(self.lab, "master"),
            STARTUP_BOUND_S,
        )

    def spawn(
        self,
        name: str,
        node: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        uts: bool = True,
    ) -> subprocess.Popen[bytes]:
        """Any long-running process of the test, in `node`'s namespace, known as `name`
        (`procs`, `log`), with stdout and stderr to `log`; stopped by `close()`."""
        running = self.procs.get(name)
        assert running is None or running.poll() is not None, f"{name}: already running"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.logs[name] = log
        with log.open("ab") as out:
            proc = self.lab.spawn(
                node, argv, stdout=out, stderr=subprocess.STDOUT, env=env, uts=uts
            )
        self.procs[name] = proc
        self.nodes[name] = node
        return proc

    def log(self, name: str) -> str:
        """All that process `name` wrote so far. Raises for a name never started: a check
        that text is absent must not pass on a log that was never read."""
        return self.logs[name].read_text(errors="replace")

    def tail(self, name: str) -> str:
        """The end of `name`'s log, to quote in a failure message."""
        return self.log(name)[-LOG_TAIL_CHARS:]

    def tails(self) -> str:
        """The end of every log, by name."""
        return "\n".join(f"--- {name}\n{self.tail(name)}" for name in self.logs)

    def holders(self) -> tuple[str, ...]:
        """The lab's nodes that have the VIP on any interface, up or down."""
        return tuple(node for node in self.lab.hosts if holds_vip(self.lab, node, up=False))

    def reload(self, node: str, how: str, bound_s: float = RELOAD_BOUND_S) -> None:
        """Reload `node`'s agent by SIGHUP (`how="sighup"`) or `gossipha reload` (else), and
        wait until it logged `reloaded` once more, without `reload failed`."""
        before = self.log(node).count(" reloaded ")
        if how == "sighup":
            self.procs[node].send_signal(1)
        else:
            env = child_env()
            env["GOSSIPHA_STATE_DIR"] = str(self.state_dir(node))
            done = subprocess.run(
                [sys.executable, "-m", "gossipha", "reload"],
                env=env,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert f"sent SIGHUP to agent {self.procs[node].pid}" in done.stdout
        wait_until(
            lambda: f"{node} reloaded\n{self.log(node)[-2000:]}",
            lambda: self.log(node).count(" reloaded ") > before,
            bound_s,
        )
        assert "reload failed" not in self.log(node), self.log(node)[-2000:]

    def close(self) -> None:
        """Stop every process by PID, holders of the VIP last (a stopping holder hands over
        to a live peer first); then undo what a failed test may have left: links a crash
        took down, a VIP not released. Safe to call twice."""
        failed: list[Exception] = []
        try:
            held = self.holders() if self.procs else ()
        except Exception:  # the order only saves time; stopping is what matters
            held = ()
        for name in sorted(self.procs, key=lambda n: self.nodes[n] in held):
            try:
                self.lab.stop(self.procs[name], timeout_s=STOP_BOUND_S)
            except Exception as exc:  # stop the others all the same
                failed.append(exc)
        for node in sorted(set(self.nodes.values())):
            self.lab.restore(node)
        for node in VIP_NODES:
            if node in self.lab.hosts:
                argv = ["ip", "addr", "del", str(TUTORIAL_VIP), "dev", "eth0"]
                self.lab.run(node, argv, uts=False, check=False)
        if failed:
            raise failed[0]
