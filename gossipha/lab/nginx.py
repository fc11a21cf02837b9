"""A real nginx per lab node, with its own config, pid, logs and temp dirs (never /etc/nginx).

Two ways to run it: `start_nginx(lab, node)` spawns it in the foreground through the lab,
so teardown stops it by PID; the `python -m gossipha.lab.nginx start|stop|status DIR`
commands run *inside* a node (``ip netns exec``) and are what a demo agent's `nginx`
service resource calls, with nginx daemonized and stopped by the PID in its pid file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gossipha.lab.topology import Lab, LabError

TUTORIAL_PAGES = {
    "master": "1111111111111master server",
    "slave": "222222222222 slave server",
}
NGINX = "nginx"
START_TIMEOUT_S = 5.0


def render_config(root: Path, *, port: int = 80, daemon: bool = False) -> str:
    """nginx.conf keeping every file under `root` (serves root/html on 0.0.0.0:port)."""
    temp = root / "tmp"
    return f"""# written by gossipha.lab.nginx
user root;
worker_processes 1;
daemon {"on" if daemon else "off"};
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    default_type text/plain;
    server {{
        listen 0.0.0.0:{port} default_server;
        root {root / "html"};
        location / {{ index index.html; }}
    }}
}}
"""


def prepare(root: Path, page: str, *, port: int = 80, daemon: bool = False) -> Path:
    """Write config and page under `root`; returns the config path."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    (root / "html").mkdir(parents=True, exist_ok=True)
    (root / "html" / "index.html").write_text(page + "\n")
    conf = root / "nginx.conf"
    conf.write_text(render_config(root, port=port, daemon=daemon))
    return conf


def argv(root: Path) -> list[str]:
    """The nginx command line for a prepared `root` (-e so nothing goes to /var/log)."""
    return [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]


@dataclass(slots=True)
class NginxHandle:
    node: str
    root: Path
    port: int
    proc: subprocess.Popen[bytes]


def _listening(lab: Lab, node: str, port: int) -> bool:
    sock = lab.socket(node, socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
    finally:
        sock.close()


def start_nginx(lab: Lab, node: str, page: str | None = None, *, port: int = 80) -> NginxHandle:
    """Start nginx in `node` (foreground, tracked by the lab) and wait until it listens."""
    root = lab.workdir / f"nginx-{node}"
    prepare(root, page if page is not None else TUTORIAL_PAGES[node], port=port)
    proc = lab.spawn(node, argv(root), uts=False)
    handle = NginxHandle(node, root, port, proc)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"nginx in {node} exited {proc.returncode}: {_log_tail(root)}")
        if _listening(lab, node, port):
            return handle
        time.sleep(0.02)
    lab.stop(proc)
    raise LabError(f"nginx in {node} not listening after {START_TIMEOUT_S}s: {_log_tail(root)}")


def stop_nginx(lab: Lab, handle: NginxHandle) -> None:
    """Stop it by PID (SIGTERM is nginx's fast shutdown; SIGKILL after a bound)."""
    lab.stop(handle.proc)


def nginx_status(lab: Lab, handle: NginxHandle) -> bool:
    """Running and accepting connections."""
    return handle.proc.poll() is None and _listening(lab, handle.node, handle.port)


def _log_tail(root: Path) -> str:
    try:
        return (root / "error.log").read_text()[-500:].strip()
    except OSError:
        return "(no error log)"


# ---- commands run inside a node: the demo's service resource ----


def _pid(root: Path) -> int | None:
    try:
        pid = int((root / "nginx.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def cmd_start(root: Path, page: str, port: int) -> int:
    if _pid(root) is not None:
        return 0
    prepare(root, page, port=port, daemon=True)
    return subprocess.run(argv(root), check=False, timeout=START_TIMEOUT_S).returncode


def cmd_stop(root: Path) -> int:
    pid = _pid(root)
    if pid is None:
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and _pid(root) is not None:
        time.sleep(0.05)
    if _pid(root) is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return 0


def cmd_status(root: Path) -> int:
    """LSB status codes: 0 running, 3 stopped."""
    return 0 if _pid(root) is not None else 3


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gossipha.lab.nginx")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("root", type=Path, help="directory for config, pid, logs, page")
    parser.add_argument("--page", default="gossipha lab node")
    parser.add_argument("--port", type=int, default=80)
    ns = parser.parse_args(args)
    if ns.action == "start":
        return cmd_start(ns.root, ns.page, ns.port)
    if ns.action == "stop":
        return cmd_stop(ns.root)
    return cmd_status(ns.root)


if __name__ == "__main__":
    sys.exit(main())
