"""A parent raised the way deploy/systemd/gossipha.service raises the agent, starting children
through the agent's spawn paths; run as root by test_child_priority.py, JSON on stdout.

    python -m tests.unit.child_priority_helper paths OUTDIR
        SCHED_RR 10, nice -10, realtime I/O, OOM -900 (needs CAP_SYS_RESOURCE; without it
        OOM stays as it was, and `parent` says so). Then a service (command and LSB script),
        a health command, a respawn as root and as nobody, and a hook each leave a process
        running; each is read by PID from here, as `ps` would.
    python -m tests.unit.child_priority_helper denied OUTDIR
        The same parent under a seccomp filter that refuses ioprio_set (as a unit's
        SystemCallFilter= could): the agent's start-up check, then a service started twice.
    python -m tests.unit.child_priority_helper oom OUTDIR
        A parent at OOM 300 that reads it as -900 (only CAP_SYS_RESOURCE may go below 0),
        so the child's reset is a real write, from 300 to 0.

Exit status 3: this machine cannot do it (the reason printed); the test skips or, under CI,
fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import errno
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from gossipha import child, child_reset
from gossipha.config.model import (
    HealthCheck,
    HealthCheckKind,
    Hook,
    Respawn,
    ServiceKind,
    ServiceResource,
)
from gossipha.core.types import Notice, NoticeKind
from gossipha.observe.alerts import HookRunner
from gossipha.resources import services
from gossipha.resources.health import command_check
from gossipha.runtime.agent import warn_if_children_keep_priority
from gossipha.runtime.respawn import Respawner

CANNOT = 3
WAIT_S = 20.0
Report = dict[str, object]


class Cannot(Exception):
    """This machine cannot run the mode."""


def observe(pid: int) -> Report:
    """What `pid` runs with, read from outside."""
    io_class, io_level = child_reset.ioprio_split(child_reset.ioprio_get(pid))
    return {
        "program": Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(),
        "uid": os.stat(f"/proc/{pid}").st_uid,
        "policy": os.sched_getscheduler(pid),
        "nice": os.getpriority(os.PRIO_PROCESS, pid),
        "io": [io_class, io_level],
        "oom_score_adj": int(Path(f"/proc/{pid}/oom_score_adj").read_text()),
    }


def raise_like_the_unit() -> None:
    """CPUSchedulingPolicy=rr, CPUSchedulingPriority=10, Nice=-10, IOSchedulingClass=realtime,
    OOMScoreAdjust=-900: on this thread, the event loop's, which forks every child."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        child_reset.ioprio_set(child_reset.ioprio_value(child_reset.IOPRIO_CLASS_RT, 4))
    except OSError as exc:
        raise Cannot(f"cannot raise the parent (root with CAP_SYS_NICE needed): {exc}") from exc
    with contextlib.suppress(PermissionError):  # no CAP_SYS_RESOURCE: see the `oom` mode
        Path(child_reset.OOM_SCORE_ADJ).write_text("-900")


async def until(value: Callable[[], int | None]) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        got = value()
        if got is not None:
            return got
        await asyncio.sleep(0.02)
    raise TimeoutError("no child appeared")


def read_pid(path: Path) -> Callable[[], int | None]:
    def value() -> int | None:
        text = path.read_text() if path.exists() else ""
        return int(text) if text.endswith("\n") else None  # one write: all or nothing

    return value


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def daemon(out: Path, name: str) -> str:
    """Shell that leaves a `sleep` running and exits, as an init script leaves nginx."""
    return f"sleep 300 & echo $! > {out / name}.pid"


async def paths(out: Path) -> Report:
    raise_like_the_unit()
    env = {"PATH": os.environ["PATH"]}
    pids: dict[str, int] = {}
    seen: dict[str, Report] = {}

    command = ServiceResource(
        "app", ServiceKind.COMMAND, start=("sh", "-c", daemon(out, "service")), timeout_s=WAIT_S
    )
    outcome = await services.start_service(command, epoch=1, group="g", env=env)
    assert outcome.ok, outcome.detail
    pids["service"] = await until(read_pid(out / "service.pid"))

    init = script(out / "initscript", f'[ "$1" = start ] && {{ {daemon(out, "lsb")}; }}\n')
    lsb = ServiceResource("initscript", ServiceKind.LSB, path=init, timeout_s=WAIT_S)
    outcome = await services.start_service(lsb, epoch=1, group="g", env=env)
    assert outcome.ok, outcome.detail
    pids["lsb"] = await until(read_pid(out / "lsb.pid"))

    check = HealthCheck(
        "cmd",
        HealthCheckKind.COMMAND,
        timeout_s=WAIT_S,
        command=("sh", "-c", daemon(out, "health")),
    )
    result = await command_check(check, group="g", env=env)
    assert result.healthy, result.detail
    pids["health"] = await until(read_pid(out / "health.pid"))

    for user, name in (("root", "respawn"), ("nobody", "respawn_nobody")):
        respawner = Respawner(Respawn(user, ("sleep", "300")))
        task = asyncio.create_task(respawner.run())

        def running(r: Respawner = respawner) -> int | None:
            return r.proc.pid if r.proc is not None else None

        seen[name] = observe(await until(running))
        task.cancel()  # the respawner stops its program
        await asyncio.gather(task, return_exceptions=True)

    runner = HookRunner(
        [Hook(script(out / "hook", daemon(out, "hook") + "\n"))], 1, cluster="c", node="n"
    )
    task = asyncio.create_task(runner.run())
    runner.submit(Notice(NoticeKind.PEER_DEAD, peer="p"))
    pids["hook"] = await until(read_pid(out / "hook.pid"))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    for name, pid in pids.items():
        seen[name] = observe(pid)
        os.kill(pid, signal.SIGKILL)
    return {
        "parent": observe(os.getpid()),
        "check": await warn_if_children_keep_priority(),
        "children": seen,
    }


# seccomp: refuse one system call with EPERM (struct sock_filter, linux/filter.h).
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def refuse_ioprio_set() -> None:
    """From now on ioprio_set fails with EPERM in this thread and every child it forks."""
    machine = os.uname().machine
    arch = _AUDIT_ARCH.get(machine)
    numbers = child_reset._IOPRIO_SYSCALLS.get(machine)
    if arch is None or numbers is None:
        raise Cannot(f"no seccomp filter written for {machine}")
    program = [
        _SockFilter(_BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _SockFilter(_BPF_JEQ_K, 1, 0, arch),
        _SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
        _SockFilter(_BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        _SockFilter(_BPF_JEQ_K, 0, 1, numbers[0]),
        _SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.EPERM),
        _SockFilter(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
    ]
    filters = (_SockFilter * len(program))(*program)
    fprog = _SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise Cannot(f"PR_SET_NO_NEW_PRIVS: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise Cannot(f"seccomp filter: {os.strerror(ctypes.get_errno())}")


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def denied(out: Path) -> Report:
    raise_like_the_unit()
    refuse_ioprio_set()
    records = _Records()
    logging.getLogger("gossipha").addHandler(records)
    logging.getLogger("gossipha").setLevel(logging.DEBUG)
    check = await warn_if_children_keep_priority()
    service = ServiceResource(
        "app", ServiceKind.COMMAND, start=("sh", "-c", daemon(out, "service")), timeout_s=WAIT_S
    )
    env = {"PATH": os.environ["PATH"]}
    seen: list[Report] = []
    for _ in range(2):
        outcome = await services.start_service(service, epoch=1, group="g", env=env)
        assert outcome.ok, outcome.detail
        pid = await until(read_pid(out / "service.pid"))
        seen.append(observe(pid))
        os.kill(pid, signal.SIGKILL)
        (out / "service.pid").unlink()
    return {
        "check": check,
        "children": seen,
        "logged": [[r.levelname, r.getMessage()] for r in records.records],
    }


async def oom(out: Path) -> Report:
    Path(child_reset.OOM_SCORE_ADJ).write_text("300")  # raising it needs no privilege
    real = child.current

    def reads_as_minus_900() -> child.Scheduling:
        return dataclasses.replace(real(), oom_score_adj=-900)

    child.current = reads_as_minus_900  # type: ignore[assignment]
    proc = await child.start_child(["sleep", "300"])
    try:
        return {"parent": observe(os.getpid()), "child": observe(proc.pid)}
    finally:
        proc.kill()
        await proc.wait()


def main() -> int:
    mode, out = sys.argv[1], Path(sys.argv[2])
    modes: dict[str, Callable[[Path], Coroutine[Any, Any, Report]]] = {
        "paths": paths,
        "denied": denied,
        "oom": oom,
    }
    try:
        result = asyncio.run(modes[mode](out))
    except Cannot as exc:
        print(exc)
        return CANNOT
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
