"""Every process the agent starts (services, health commands, respawns, hooks) starts here.

A child begins with an ordinary process's scheduling, not the agent's: under the systemd
unit the agent runs SCHED_RR at nice -10 with realtime I/O and OOM score -900 so heartbeats
never wait, and nginx's workers must not inherit that (busy, they would share the CPU with
the heartbeats and starve the rest of the host, and the OOM killer would spare them). What the
agent has raised is reset in the child: SCHED_OTHER, nice 0, no I/O class (what every
ordinary process has: best effort at the level of its nice value, 4 at nice 0), OOM score
0. What it has lowered (nice 5, idle I/O) is kept.

The reset runs in `child_reset.py`, exec'd between fork and the program in the same PID
(the agent has threads, so no Python may run between fork and exec). It also arms the
death signal of a respawned helper. When there is nothing to do (nothing raised: tests, a
shell) the program is started directly, as before.
Each child runs in a session of its own, so a timeout can kill its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import pwd
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gossipha import child_reset
from gossipha.aio import pipe_to, within

log = logging.getLogger(__name__)

RESET_SCRIPT = Path(child_reset.__file__)
# The wrapper starts in ~30 ms, at the agent's realtime priority until its reset, so a busy
# host hardly slows it: past this something is wrong, and it is killed.
EXEC_TIMEOUT_S = 5.0
REAP_TIMEOUT_S = 5.0
REPORT_LIMIT_BYTES = 4096
DEVNULL = asyncio.subprocess.DEVNULL


@dataclass(frozen=True, slots=True)
class Scheduling:
    """The four settings a child inherits. `io_class`/`io_level` None: not readable."""

    policy: int
    reset_on_fork: bool
    nice: int
    io_class: int | None
    io_level: int | None
    oom_score_adj: int


def current() -> Scheduling:
    """This process's settings (the loop's thread: the one that forks)."""
    raw = os.sched_getscheduler(0)
    reset_on_fork = bool(raw & getattr(os, "SCHED_RESET_ON_FORK", 0))
    io: tuple[int | None, int | None]
    try:
        io = child_reset.ioprio_split(child_reset.ioprio_get())
    except OSError:
        io = (None, None)
    try:
        with open(child_reset.OOM_SCORE_ADJ, encoding="ascii") as f:
            oom = int(f.read().strip() or 0)
    except (OSError, ValueError):
        oom = 0  # no /proc: nothing we could reset either
    return Scheduling(
        policy=raw & ~getattr(os, "SCHED_RESET_ON_FORK", 0),
        reset_on_fork=reset_on_fork,
        nice=os.getpriority(os.PRIO_PROCESS, 0),
        io_class=io[0],
        io_level=io[1],
        oom_score_adj=oom,
    )


def reset_plan(s: Scheduling) -> tuple[str, ...]:
    """What a child of a process with `s` must reset: only what is above an ordinary one.

    SCHED_RESET_ON_FORK already gives a child SCHED_OTHER and nice 0. I/O class NONE follows
    the nice value, so resetting nice is enough for it.
    """
    plan: list[str] = []
    if not s.reset_on_fork:
        if s.policy in (os.SCHED_RR, os.SCHED_FIFO):
            plan.append(child_reset.SCHED)
        if s.nice < 0:
            plan.append(child_reset.NICE)
    if s.io_class == child_reset.IOPRIO_CLASS_RT or (
        s.io_class == child_reset.IOPRIO_CLASS_BE
        and s.io_level is not None
        and s.io_level < child_reset.IOPRIO_NORMAL_LEVEL
    ):
        plan.append(child_reset.IO)
    if s.oom_score_adj < 0:
        plan.append(child_reset.OOM)
    return tuple(plan)


class _Report(asyncio.Protocol):
    """Collects what the wrapper writes on its report pipe; `done` resolves at EOF."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.data = bytearray()
        self.done = done

    def data_received(self, data: bytes) -> None:
        room = REPORT_LIMIT_BYTES - len(self.data)
        if room > 0:
            self.data += data[:room]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


@dataclass(frozen=True, slots=True)
class _Outcome:
    failures: tuple[str, ...]
    exec_errno: int | None


def _parse(data: bytes) -> _Outcome:
    failures: list[str] = []
    exec_errno: int | None = None
    for line in data.decode("utf-8", "replace").splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "reset":
            failures.append(rest)
        elif kind == "exec":
            exec_errno = (int(rest) if rest.isdigit() else 0) or errno.EIO
    return _Outcome(tuple(failures), exec_errno)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL `proc`'s process group (its own session) and wait for it, bounded."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        await within(asyncio.shield(proc.wait()), REAP_TIMEOUT_S)


@dataclass(frozen=True, slots=True)
class _How:
    """How to start the program: what `asyncio.create_subprocess_exec` takes besides argv."""

    env: Mapping[str, str] | None = None
    cwd: str | Path | None = None
    user: str | None = None
    stdin: int | None = DEVNULL
    stdout: int | None = None
    stderr: int | None = None


async def _exec(
    argv: Sequence[str], how: _How, pass_fds: Sequence[int] = ()
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=how.stdin,
        stdout=how.stdout,
        stderr=how.stderr,
        env=None if how.env is None else dict(how.env),
        cwd=how.cwd,
        user=how.user,
        pass_fds=pass_fds,
        start_new_session=True,
    )


async def _run_wrapper(
    plan: Sequence[str], argv: Sequence[str], how: _How, *, end_with_agent: bool = False
) -> tuple[asyncio.subprocess.Process, _Outcome]:
    """Start the wrapper on `argv` (may be empty: reset only) and wait for its report: EOF
    comes when the program has been exec'd or the wrapper has exited."""
    loop = asyncio.get_running_loop()
    # The wrapper takes the user id itself, after the reset (KeyError if unknown, as Popen).
    uid = child_reset.NO_USER if how.user is None else str(pwd.getpwnam(how.user).pw_uid)
    how = dataclasses.replace(how, user=None)
    parent = str(os.getpid()) if end_with_agent else child_reset.NO_PARENT
    done: asyncio.Future[None] = loop.create_future()
    report = _Report(done)
    transport, write_fd = await pipe_to(report)
    # -I: the program's PYTHONPATH and the like must not reach the wrapper; -S: fast start.
    wrapper = [sys.executable, "-I", "-S", str(RESET_SCRIPT), str(write_fd)]
    try:
        try:
            plan_arg = ",".join(plan) or child_reset.NO_PLAN
            proc = await _exec([*wrapper, plan_arg, uid, parent, *argv], how, (write_fd,))
        finally:
            os.close(write_fd)
        try:
            await within(asyncio.shield(done), EXEC_TIMEOUT_S)
        except TimeoutError:
            await _reap(proc)
            name = argv[0] if argv else str(RESET_SCRIPT)
            raise OSError(
                errno.ETIMEDOUT, f"not started within {EXEC_TIMEOUT_S:g}s", name
            ) from None
        except BaseException:
            await _reap(proc)
            raise
    finally:
        transport.close()
    return proc, _parse(bytes(report.data))


async def start_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    user: str | None = None,
    stdin: int | None = DEVNULL,
    stdout: int | None = None,
    stderr: int | None = None,
    end_with_agent: bool = False,
) -> asyncio.subprocess.Process:
    """Start `argv` (no shell) in a new session, with ordinary scheduling; as
    `asyncio.create_subprocess_exec`, and OSError when it cannot be run, as that raises.

    `end_with_agent`: the program gets SIGTERM if the agent dies (for a respawned helper;
    a service must outlive it, to be adopted). A reset that fails does not stop the
    program; it is logged at debug here (the agent warns once at start-up: `check_reset`).
    """
    if not argv:
        raise ValueError("no program to start")
    how = _How(env, cwd, user, stdin, stdout, stderr)
    plan = reset_plan(current())
    if not plan and not end_with_agent:
        return await _exec(argv, how)
    proc, outcome = await _run_wrapper(plan, argv, how, end_with_agent=end_with_agent)
    for failure in outcome.failures:
        log.debug("child keeps the agent's priority program=%s reset=%s", argv[0], failure)
    if outcome.exec_errno is not None:
        with contextlib.suppress(TimeoutError):
            await within(proc.wait(), REAP_TIMEOUT_S)
        raise OSError(outcome.exec_errno, os.strerror(outcome.exec_errno), argv[0])
    return proc


async def check_reset() -> list[str]:
    """What a child cannot reset here (`what: error`), tried once in a real child.

    Empty when nothing needs resetting. The agent logs a non-empty answer once, at start.
    """
    plan = reset_plan(current())
    if not plan:
        return []
    proc, outcome = await _run_wrapper(plan, (), _How(stdout=DEVNULL, stderr=DEVNULL))
    with contextlib.suppress(TimeoutError):
        await within(proc.wait(), REAP_TIMEOUT_S)
    return list(outcome.failures)
