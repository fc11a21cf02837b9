"""Run as `python -I -S child_reset.py FD PLAN UID PARENT [PROGRAM ARGS...]`: reset, then exec.

The agent runs at realtime CPU and I/O priority, nice -10 and OOM score -900 (the systemd
unit), and a child inherits all four. The agent has threads (asyncio's executor and child
watcher), so the reset cannot run between fork and exec (`preexec_fn` may deadlock there):
this small program is exec'd in between instead, in the child's own PID, and execs PROGRAM
once it has reset what PLAN names (comma-separated: sched, nice, io, oom; `-`: nothing).
With UID (not `-`) it then takes that user id, as subprocess's `user=` does; the reset is
done before, as root, so the user needs no access to this interpreter. With PARENT (the
agent's PID, not `-`) PROGRAM gets SIGTERM when the agent dies: a respawned helper must not
outlive it (the unit's KillMode=process leaves the agent's children to the agent).

A reset that fails is reported on FD and PROGRAM starts anyway. So is an exec that fails
(`exec ERRNO`, exit 127): the parent raises it as OSError, as subprocess would. FD is
close-on-exec, so EOF on it tells the parent PROGRAM is running. Without PROGRAM it only
resets and reports (the agent's start-up check). Standard library only, and run with `-S`,
so it starts in about 15 ms (30 ms when it needs ctypes: an I/O priority, a death signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings  # noqa: F401 - imported by os.execvpe: now, while the stdlib is readable
from collections.abc import Callable, Mapping, Sequence

SCHED = "sched"
NICE = "nice"
IO = "io"
OOM = "oom"
RESETS = (SCHED, NICE, IO, OOM)
NO_PLAN = "-"
NO_USER = "-"
NO_PARENT = "-"
PR_SET_PDEATHSIG = 1
EXEC_FAILED_STATUS = 127

# ioprio_set(2)/ioprio_get(2): no libc wrapper, no Python binding; syscall numbers per arch.
_IOPRIO_SYSCALLS: Mapping[str, tuple[int, int]] = {
    "x86_64": (251, 252),
    "aarch64": (30, 31),
    "riscv64": (30, 31),
    "loongarch64": (30, 31),
    "i386": (289, 290),
    "i686": (289, 290),
    "armv7l": (314, 315),
    "armv6l": (314, 315),
    "ppc64le": (273, 274),
    "ppc64": (273, 274),
    "s390x": (282, 283),
}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13
IOPRIO_CLASS_NONE = 0
IOPRIO_CLASS_RT = 1
IOPRIO_CLASS_BE = 2
IOPRIO_CLASS_IDLE = 3
# An ordinary process has no class (NONE): the kernel serves it best effort at the level
# its nice value gives, (nice + 20) // 5, so 4 of 0 (high) to 7 at nice 0.
IOPRIO_NORMAL_LEVEL = 4
OOM_SCORE_ADJ = "/proc/self/oom_score_adj"


def ioprio_value(klass: int, level: int) -> int:
    return (klass << IOPRIO_CLASS_SHIFT) | level


def ioprio_split(value: int) -> tuple[int, int]:
    """(class, level) of an ioprio value."""
    return value >> IOPRIO_CLASS_SHIFT, value & ((1 << IOPRIO_CLASS_SHIFT) - 1)


def death_signal() -> Callable[[int], None]:
    """`arm(parent)`: SIGTERM when the thread that forked us ends, at once if `parent` is
    gone already. ctypes is loaded here, before a setreuid may make it unreadable."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def arm(parent: int) -> None:
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        if os.getppid() != parent:  # it died before the prctl: no signal would come
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _ioprio_syscall(index: int, *args: int) -> int:
    machine = os.uname().machine
    numbers = _IOPRIO_SYSCALLS.get(machine)
    if numbers is None:
        raise OSError(f"ioprio syscalls unknown on {machine}")
    import ctypes  # only when an I/O priority is read or set: 15 ms of start-up

    libc = ctypes.CDLL(None, use_errno=True)
    result = int(libc.syscall(ctypes.c_long(numbers[index]), *(ctypes.c_int(a) for a in args)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def ioprio_get(pid: int = 0) -> int:
    """The I/O priority of process `pid` (0: this one); OSError if it cannot be read."""
    return _ioprio_syscall(1, IOPRIO_WHO_PROCESS, pid)


def ioprio_set(value: int, pid: int = 0) -> None:
    _ioprio_syscall(0, IOPRIO_WHO_PROCESS, pid, value)


def _reset_sched() -> None:
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def _reset_nice() -> None:
    # After the policy (which keeps the nice value); raising nice needs no privilege.
    os.setpriority(os.PRIO_PROCESS, 0, 0)


def _reset_io() -> None:
    # NONE rather than an explicit best-effort 4: a service that renices its batch work
    # still lowers that work's I/O priority with it, as anywhere else on the host.
    ioprio_set(ioprio_value(IOPRIO_CLASS_NONE, 0))


def _reset_oom() -> None:
    # Raising it needs no privilege; only going below the lowest value set is guarded.
    with open(OOM_SCORE_ADJ, "w", encoding="ascii") as f:
        f.write("0")


STEPS: Mapping[str, Callable[[], None]] = {
    SCHED: _reset_sched,
    NICE: _reset_nice,
    IO: _reset_io,
    OOM: _reset_oom,
}


def reset(plan: Sequence[str], steps: Mapping[str, Callable[[], None]] = STEPS) -> list[str]:
    """Do each reset of `plan` in order; every one is tried. Returns `what: error` failures."""
    failures: list[str] = []
    for what in RESETS:
        if what in plan:
            try:
                steps[what]()
            except OSError as exc:
                failures.append(f"{what}: {exc}")
    return failures


def initial_environ() -> dict[bytes, bytes]:
    """The environment exactly as the parent passed it.

    Python's start-up may change `os.environ` (PEP 538 sets LC_CTYPE under the C locale),
    and PROGRAM must not see that; the kernel keeps the original at /proc/self/environ.
    """
    try:
        with open("/proc/self/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    env: dict[bytes, bytes] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key and key not in env:
            env[key] = value
    return env


def _report(fd: int, line: str) -> None:
    with contextlib.suppress(OSError):  # the parent stopped listening: nothing to tell it
        os.write(fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))


def main(argv: Sequence[str]) -> int:
    fd = int(argv[1])
    plan = () if argv[2] == NO_PLAN else tuple(argv[2].split(","))
    uid = None if argv[3] == NO_USER else int(argv[3])
    parent = None if argv[4] == NO_PARENT else int(argv[4])
    program = list(argv[5:])
    for failure in reset(plan):
        _report(fd, f"reset {failure}")
    if not program:
        return 0
    os.set_inheritable(fd, False)  # closed by a successful exec: the parent's EOF
    # Python ignores SIGPIPE and SIGXFSZ at start-up; an ignored signal survives exec.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    env = initial_environ()  # before setreuid: then /proc/self is no longer ours to read
    arm = None if parent is None else death_signal()
    try:
        if uid is not None:
            # Never PROGRAM as root when a user was asked for. From here on this user may
            # not be able to read the interpreter's files: nothing more is imported.
            os.setreuid(uid, uid)
        if arm is not None and parent is not None:
            arm(parent)  # after setreuid, which would clear it
        os.execvpe(program[0], program, env)
    except OSError as exc:
        _report(fd, f"exec {exc.errno or 0}")
    return EXEC_FAILED_STATUS


if __name__ == "__main__":
    sys.exit(main(sys.argv))
