"""Services run for real: scripts written here, a fake OCF agent, Debian's nginx OCF agent.

Each test checks what an operator would: the script got Heartbeat's arguments in Heartbeat's
order, the daemon is running (or gone) afterwards, a hung script is killed with its children,
and the outcome says why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipha.config.model import (
    HealthCheck,
    HealthCheckKind,
    ServiceKind,
    ServiceResource,
    VipResource,
)
from gossipha.resources import services
from gossipha.resources.health import run_check
from gossipha.resources.services import (
    ServiceOutcome,
    start_group,
    start_service,
    status_service,
    stop_group,
    stop_service,
)
from tests.ci import cannot_run


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return path


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def gone(pid: int, within_s: float = 2.0) -> bool:
    """True once `pid` has exited; SIGKILL delivery is asynchronous, so poll briefly."""
    deadline = time.monotonic() + within_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


@pytest.fixture
def reap_pids() -> Iterator[list[int]]:
    """PIDs a test started (daemons); SIGKILLed by PID at teardown if still there."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- Heartbeat resource.d -------------------------------------------------------------------


def heartbeat_script(tmp_path: Path) -> ServiceResource:
    """A resource.d script that records its argv and environment, like IPaddr::a::b would."""
    log = tmp_path / "calls"
    state = tmp_path / "state"
    script = write_script(
        tmp_path / "resource.d" / "webapp",
        f"""
        echo "$* epoch=$GOSSIPHA_EPOCH group=$GOSSIPHA_GROUP action=$GOSSIPHA_ACTION" >> {log}
        eval "action=\\${{$#}}"
        case "$action" in
          start) touch {state}; exit 0 ;;
          stop) rm -f {state}; exit 0 ;;
          status) if [ -e {state} ]; then echo "webapp is running"; else echo "webapp stopped"; fi
                  exit 0 ;;
        esac
        exit 1
        """,
    )
    return ServiceResource("webapp", ServiceKind.RESOURCE_D, ("10.0.0.1", "eth0"), path=script)


async def test_resource_d_gets_args_before_action_and_gossipha_env(tmp_path: Path) -> None:
    res = heartbeat_script(tmp_path)
    assert (await status_service(res, epoch=7, group="web")).ok is False
    started = await start_service(res, epoch=7, group="web")
    assert started.ok, started.detail
    assert started.exit_code == 0
    status = await status_service(res, epoch=7, group="web")
    assert status.ok and status.running is True, status.detail
    stopped = await stop_service(res, epoch=8, group="web")
    assert stopped.ok, stopped.detail
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        "10.0.0.1 eth0 status epoch=7 group=web action=status",
        "10.0.0.1 eth0 start epoch=7 group=web action=start",
        "10.0.0.1 eth0 status epoch=7 group=web action=status",
        "10.0.0.1 eth0 stop epoch=8 group=web action=stop",
    ]


async def test_resource_d_status_follows_output_not_exit_code(tmp_path: Path) -> None:
    """Heartbeat ignored the status exit code: "OK"/"running" in the output means running."""
    says = tmp_path / "says"
    code = tmp_path / "code"
    script = write_script(tmp_path / "svc", f'cat {says}; exit "$(cat {code})"\n')
    res = ServiceResource("svc", ServiceKind.RESOURCE_D, path=script)
    cases = [("OK\n", 1, True), ("svc is running\n", 3, True), ("stopped\n", 0, False),
             ("svc is not running\n", 0, False), ("", 0, True), ("", 3, False)]  # fmt: skip
    for text, exit_code, running in cases:
        says.write_text(text)
        code.write_text(str(exit_code))
        out = await status_service(res, epoch=1, group="g")
        assert (out.ok, out.running) == (running, running), (text, exit_code, out.detail)


# --- LSB init script with a pid file ----------------------------------------------------------


def lsb_script(tmp_path: Path, *, quiet_daemon: bool = True) -> tuple[ServiceResource, Path]:
    pidfile = tmp_path / "run" / "daemon.pid"
    redirect = ">/dev/null 2>&1" if quiet_daemon else ""
    script = write_script(
        tmp_path / "init.d" / "daemon",
        f"""
        PIDFILE={pidfile}
        running() {{ [ -s $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }}
        case "$1" in
          start)
            running && {{ echo "already running"; exit 0; }}
            mkdir -p {pidfile.parent}
            sleep 300 {redirect} &
            echo $! > $PIDFILE
            echo "started daemon"
            exit 0 ;;
          stop)
            # Not LSB-compliant on purpose: fails when already stopped (like old Red Hat ones).
            running || {{ echo "daemon not running" >&2; exit 1; }}
            kill "$(cat $PIDFILE)"; rm -f $PIDFILE; exit 0 ;;
          status)
            if running; then echo "daemon is running"; exit 0; fi
            [ -e $PIDFILE ] && {{ echo "daemon dead, pid file exists"; exit 1; }}
            echo "daemon is stopped"; exit 3 ;;
        esac
        exit 2
        """,
    )
    return ServiceResource("daemon", ServiceKind.LSB, path=script, timeout_s=5.0), pidfile


async def test_lsb_start_status_stop_with_pid_file(tmp_path: Path, reap_pids: list[int]) -> None:
    res, pidfile = lsb_script(tmp_path)
    before = await status_service(res, epoch=1, group="web")
    assert (before.ok, before.running, before.exit_code) == (False, False, 3)
    assert "not running (exit 3)" in before.detail

    started = await start_service(res, epoch=1, group="web")
    assert started.ok, started.detail
    assert "started daemon" in started.detail
    pid = read_pid(pidfile)
    reap_pids.append(pid)
    assert alive(pid), "the daemon the init script started must outlive the action"

    status = await status_service(res, epoch=1, group="web")
    assert (status.ok, status.running, status.exit_code) == (True, True, 0)

    stopped = await stop_service(res, epoch=1, group="web")
    assert stopped.ok, stopped.detail
    assert await gone(pid)
    assert (await status_service(res, epoch=1, group="web")).running is False


async def test_lsb_stop_when_already_stopped_is_ok(tmp_path: Path) -> None:
    """The script exits 1 on stop-when-stopped; status then says 3, so the stop succeeded."""
    res, _ = lsb_script(tmp_path)
    out = await stop_service(res, epoch=1, group="web")
    assert out.ok, out.detail
    assert out.exit_code == 1
    assert "status says not running" in out.detail


async def test_lsb_dead_with_pid_file_is_not_running(tmp_path: Path) -> None:
    res, pidfile = lsb_script(tmp_path)
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text("999999999\n")
    out = await status_service(res, epoch=1, group="web")
    assert (out.ok, out.running, out.exit_code) == (False, False, 1)
    assert "dead, pid file exists" in out.detail


async def test_lsb_status_unknown_code_is_not_a_definite_answer(tmp_path: Path) -> None:
    script = write_script(tmp_path / "init.d" / "odd", "echo confused; exit 4\n")
    out = await status_service(
        ServiceResource("odd", ServiceKind.LSB, path=script), epoch=1, group="g"
    )
    assert (out.ok, out.running, out.exit_code) == (False, None, 4)
    assert "status unknown" in out.detail


async def test_daemon_holding_the_output_pipe_does_not_block_start(
    tmp_path: Path, reap_pids: list[int]
) -> None:
    """A start script whose daemon keeps stdout open returns as soon as the script exits."""
    res, pidfile = lsb_script(tmp_path, quiet_daemon=False)
    t0 = time.monotonic()
    out = await start_service(res, epoch=1, group="web")
    elapsed = time.monotonic() - t0
    pid = read_pid(pidfile)
    reap_pids.append(pid)
    assert out.ok, out.detail
    assert elapsed < 2.0, elapsed
    assert alive(pid), "a normal exit must not kill what the script started"


# --- timeouts, output, missing scripts ------------------------------------------------------


async def test_timeout_kills_the_whole_process_group(tmp_path: Path, reap_pids: list[int]) -> None:
    child_pid = tmp_path / "child.pid"
    script = write_script(
        tmp_path / "init.d" / "hang",
        f"""
        sleep 300 &
        echo $! > {child_pid}
        echo "starting, slowly"
        sleep 300
        """,
    )
    res = ServiceResource("hang", ServiceKind.LSB, path=script, timeout_s=0.5)
    t0 = time.monotonic()
    out = await start_service(res, epoch=1, group="web")
    elapsed = time.monotonic() - t0
    pid = read_pid(child_pid)
    reap_pids.append(pid)
    assert (out.ok, out.exit_code, out.timed_out) == (False, None, True)
    assert "timed out after 0.5s" in out.detail
    assert "starting, slowly" in out.detail
    assert 0.5 <= elapsed < 2.0, elapsed
    assert await gone(pid), "the script's background child must be killed with it"


async def test_cancelled_action_kills_its_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    script = write_script(tmp_path / "slow", f"echo $$ > {marker}; exec sleep 300\n")
    res = ServiceResource("slow", ServiceKind.LSB, path=script, timeout_s=60)
    task = asyncio.ensure_future(start_service(res, epoch=1, group="web"))
    for _ in range(100):
        if marker.exists() and marker.read_text().strip():
            break
        await asyncio.sleep(0.02)
    pid = read_pid(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(pid)


async def test_output_is_bounded_to_the_tail(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "chatty",
        "i=0; while [ $i -lt 3000 ]; do echo line $i of noise; i=$((i+1)); done; echo LAST\n",
    )
    out = await start_service(
        ServiceResource("chatty", ServiceKind.LSB, path=script), epoch=1, group="g"
    )
    assert out.ok
    assert out.detail.rstrip().endswith("LAST")
    assert len(out.detail) < services.OUTPUT_LIMIT_BYTES + 300
    assert "earlier bytes dropped" in out.detail


async def test_missing_script_fails_with_a_reason(tmp_path: Path) -> None:
    res = ServiceResource("gone", ServiceKind.LSB, path=tmp_path / "nope")
    out = await start_service(res, epoch=1, group="g")
    assert (out.ok, out.exit_code) == (False, None)
    assert "cannot run" in out.detail and "nope" in out.detail


# --- COMMAND --------------------------------------------------------------------------------


async def test_command_runs_argv_without_a_shell(tmp_path: Path) -> None:
    state = tmp_path / "state"
    record = tmp_path / "argv"
    tool = write_script(
        tmp_path / "tool",
        f"""
        printf '%s\\n' "$@" > {record}
        case "$1" in
          up) echo "$GOSSIPHA_EPOCH $MY_VAR" > {state} ;;
          down) rm -f {state} ;;
          check) [ -e {state} ] ;;
        esac
        """,
    )
    res = ServiceResource(
        "app",
        ServiceKind.COMMAND,
        start=(str(tool), "up", "$HOME; rm -rf /"),
        stop=(str(tool), "down"),
        status=(str(tool), "check"),
    )
    assert (await status_service(res, epoch=4, group="g")).running is False
    out = await start_service(res, epoch=4, group="g", env={"MY_VAR": "x y"})
    assert out.ok, out.detail
    assert record.read_text().splitlines() == ["up", "$HOME; rm -rf /"]
    assert state.read_text() == "4 x y\n"
    assert (await status_service(res, epoch=4, group="g")).running is True
    assert (await stop_service(res, epoch=4, group="g")).ok
    assert not state.exists()


async def test_command_failure_and_missing_command(tmp_path: Path) -> None:
    res = ServiceResource("app", ServiceKind.COMMAND, start=("false",))
    out = await start_service(res, epoch=1, group="g")
    assert (out.ok, out.exit_code) == (False, 1)
    assert "failed (exit 1)" in out.detail
    missing = await stop_service(res, epoch=1, group="g")
    assert missing.ok is False and "no stop command configured" in missing.detail


# --- OCF ------------------------------------------------------------------------------------


def fake_ocf_agent(tmp_path: Path, *, start_code: int = 0) -> ServiceResource:
    """An OCF agent under ROOT/resource.d/test/fake: state file, env dump, spec exit codes."""
    root = tmp_path / "ocf"
    state = tmp_path / "fake.state"
    agent = write_script(
        root / "resource.d" / "test" / "fake",
        f"""
        env | grep -E '^(OCF_|GOSSIPHA_)' | sort > {tmp_path}/env.$1
        case "$1" in
          start) [ {start_code} -eq 0 ] || {{ echo "bad config" >&2; exit {start_code}; }}
                 echo "$OCF_RESKEY_port" > {state}; exit 0 ;;
          stop) [ -e {state} ] || exit 7; rm -f {state}; exit 0 ;;
          monitor) [ -e {state} ] && exit 0; exit 7 ;;
        esac
        exit 3
        """,
    )
    return ServiceResource(
        "ocf:test:fake",
        ServiceKind.OCF,
        ("port=8080", "greeting=hello world"),
        path=agent,
        ocf_provider="test",
        ocf_type="fake",
    )


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


async def test_ocf_environment_actions_and_exit_codes(tmp_path: Path) -> None:
    res = fake_ocf_agent(tmp_path)
    first = await status_service(res, epoch=9, group="web")
    assert (first.ok, first.running, first.exit_code) == (False, False, 7)
    assert "OCF_NOT_RUNNING" in first.detail
    assert (await stop_service(res, epoch=9, group="web")).ok, "stop of stopped (7) is ok"
    started = await start_service(res, epoch=9, group="web")
    assert started.ok and "OCF_SUCCESS" in started.detail
    assert (tmp_path / "fake.state").read_text() == "8080\n"
    assert (await status_service(res, epoch=9, group="web")).running is True
    assert (await stop_service(res, epoch=9, group="web")).ok
    env = read_env(tmp_path / "env.start")
    assert env["OCF_ROOT"] == str(tmp_path / "ocf")
    assert env["OCF_RESKEY_port"] == "8080"
    assert env["OCF_RESKEY_greeting"] == "hello world"
    assert env["OCF_RESOURCE_TYPE"] == "fake"
    assert env["OCF_RESOURCE_PROVIDER"] == "test"
    assert env["OCF_RESOURCE_INSTANCE"] == "web-fake"
    assert env["GOSSIPHA_EPOCH"] == "9"
    assert env["GOSSIPHA_GROUP"] == "web"
    assert env["GOSSIPHA_ACTION"] == "start"
    assert read_env(tmp_path / "env.monitor")["GOSSIPHA_ACTION"] == "status"


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (1, "OCF_ERR_GENERIC"),
        (5, "OCF_ERR_INSTALLED"),
        (6, "OCF_ERR_CONFIGURED"),
        (7, "OCF_NOT_RUNNING"),
        (42, "unknown OCF code 42"),
    ],
)
async def test_ocf_start_errors_are_named(tmp_path: Path, code: int, name: str) -> None:
    out = await start_service(fake_ocf_agent(tmp_path, start_code=code), epoch=1, group="g")
    assert (out.ok, out.exit_code) == (False, code)
    assert name in out.detail
    assert "bad config" in out.detail


async def test_ocf_bad_parameter_is_refused_without_running(tmp_path: Path) -> None:
    res = ServiceResource(
        "ocf:test:fake", ServiceKind.OCF, ("no-equals",), path=fake_ocf_agent(tmp_path).path
    )
    out = await start_service(res, epoch=1, group="g")
    assert out.ok is False and "expected NAME=VALUE" in out.detail
    assert not (tmp_path / "env.start").exists()


NGINX_AGENT = Path("/usr/lib/ocf/resource.d/heartbeat/nginx")


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def nginx_conf(root: Path, port: int, page: str) -> Path:
    """A daemonizing nginx on 127.0.0.1:port with every file under `root` (not /etc/nginx)."""
    (root / "html").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "html" / "index.html").write_text(page + "\n")
    conf = root / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            user root;
            worker_processes 1;
            pid {root}/nginx.pid;
            error_log {root}/error.log warn;
            events {{ worker_connections 64; }}
            http {{
                access_log off;
                client_body_temp_path {root}/tmp/body;
                proxy_temp_path {root}/tmp/proxy;
                fastcgi_temp_path {root}/tmp/fastcgi;
                uwsgi_temp_path {root}/tmp/uwsgi;
                scgi_temp_path {root}/tmp/scgi;
                server {{
                    listen 127.0.0.1:{port};
                    root {root}/html;
                }}
            }}
            """
        )
    )
    return conf


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
        body: bytes = resp.read()
        return body.decode()


async def test_real_nginx_ocf_agent_on_loopback(tmp_path: Path) -> None:
    """The tutorial's nginx, through resource-agents' OCF agent, on a private loopback port."""
    if not NGINX_AGENT.is_file() or shutil.which("nginx") is None or os.geteuid() != 0:
        cannot_run("needs Debian's resource-agents nginx agent, nginx, and root")
    port = free_loopback_port()
    root = tmp_path / "nginx"
    conf = nginx_conf(root, port, "1111111111111master server")
    res = ServiceResource(
        "ocf:heartbeat:nginx",
        ServiceKind.OCF,
        (f"configfile={conf}", "httpd=/usr/sbin/nginx", f"options=-e {root}/error.log"),
        path=NGINX_AGENT,
        ocf_provider="heartbeat",
        ocf_type="nginx",
        timeout_s=15,
    )
    try:
        assert (await status_service(res, epoch=1, group="web")).running is False
        started = await start_service(res, epoch=1, group="web")
        assert started.ok, started.detail
        assert fetch(port) == "1111111111111master server\n"
        assert (await status_service(res, epoch=1, group="web")).running is True
        check = HealthCheck(
            "page", HealthCheckKind.HTTP, url=f"http://127.0.0.1:{port}/", expect_body="master"
        )
        assert (await run_check(check, group="web")).healthy
        stopped = await stop_service(res, epoch=1, group="web")
        assert stopped.ok, stopped.detail
        with pytest.raises(OSError):
            fetch(port)
        assert (await status_service(res, epoch=1, group="web")).running is False
        down = await run_check(check, group="web")
        assert not down.healthy, down.detail
        again = await stop_service(res, epoch=1, group="web")
        assert again.ok, again.detail
    finally:
        pidfile = root / "nginx.pid"
        if pidfile.exists():
            pid = read_pid(pidfile)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- systemd --------------------------------------------------------------------------------


async def test_systemd_reports_missing_pid1_without_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "SYSTEMD_RUNTIME_DIR", tmp_path / "no-systemd")
    res = ServiceResource("nginx", ServiceKind.SYSTEMD, unit="nginx.service")
    started = await start_service(res, epoch=1, group="web")
    assert started.ok is False
    assert "systemd is not running as PID 1" in started.detail
    status = await status_service(res, epoch=1, group="web")
    assert (status.ok, status.running) == (False, False)
    assert (await stop_service(res, epoch=1, group="web")).ok


async def test_systemd_uses_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With systemd up (faked), actions are `systemctl start|stop|is-active UNIT`."""
    booted = tmp_path / "run-systemd"
    booted.mkdir()
    monkeypatch.setattr(services, "SYSTEMD_RUNTIME_DIR", booted)
    calls = tmp_path / "calls"
    active = tmp_path / "active"
    write_script(
        tmp_path / "bin" / "systemctl",
        f"""
        echo "$*" >> {calls}
        case "$2" in
          start) touch {active} ;;
          stop) rm -f {active} ;;
          is-active) if [ -e {active} ]; then echo active; exit 0; fi; echo inactive; exit 3 ;;
        esac
        """,
    )
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    res = ServiceResource("nginx", ServiceKind.SYSTEMD)
    off = await status_service(res, epoch=1, group="web", env=env)
    assert (off.ok, off.running) == (False, False) and "inactive" in off.detail
    assert (await start_service(res, epoch=1, group="web", env=env)).ok
    assert (await status_service(res, epoch=1, group="web", env=env)).running is True
    assert (await stop_service(res, epoch=1, group="web", env=env)).ok
    assert calls.read_text().splitlines() == [
        "--no-ask-password is-active nginx.service",
        "--no-ask-password start nginx.service",
        "--no-ask-password is-active nginx.service",
        "--no-ask-password stop nginx.service",
    ]


# --- groups ---------------------------------------------------------------------------------


def logging_service(tmp_path: Path, name: str, *, fail_start: bool = False) -> ServiceResource:
    log = tmp_path / "order"
    start = ["sh", "-c", f"echo start {name} >> {log}" + ("; exit 1" if fail_start else "")]
    stop = ["sh", "-c", f"echo stop {name} >> {log}"]
    return ServiceResource(name, ServiceKind.COMMAND, start=tuple(start), stop=tuple(stop))


async def test_group_starts_in_order_and_stops_in_reverse_skipping_vips(tmp_path: Path) -> None:
    import ipaddress

    vip = VipResource(ipaddress.IPv4Address("192.0.2.10"), 24, "eth0")
    group = (vip, logging_service(tmp_path, "a"), logging_service(tmp_path, "b"))
    started = await start_group(group, epoch=1, group="web")
    assert [s.resource.name for s in started] == ["a", "b"]
    assert all(s.outcome.ok for s in started)
    stopped = await stop_group(group, epoch=1, group="web")
    assert [s.resource.name for s in stopped] == ["b", "a"]
    log = (tmp_path / "order").read_text().splitlines()
    assert log == ["start a", "start b", "stop b", "stop a"]


async def test_group_start_stops_at_first_failure(tmp_path: Path) -> None:
    group = (
        logging_service(tmp_path, "a"),
        logging_service(tmp_path, "b", fail_start=True),
        logging_service(tmp_path, "c"),
    )
    steps = await start_group(group, epoch=1, group="web")
    assert [(s.resource.name, s.outcome.ok) for s in steps] == [("a", True), ("b", False)]
    assert (tmp_path / "order").read_text().splitlines() == ["start a", "start b"]


def test_outcome_is_frozen() -> None:
    out = ServiceOutcome(True, 0, "x", 0.1)
    with pytest.raises(AttributeError):
        out.ok = False  # type: ignore[misc]
