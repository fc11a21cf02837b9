"""gossipha/child.py and child_reset.py: what is reset, and that a child started through the
reset wrapper behaves as one started directly (errors, environment, signals, session).

The wrapper is used only when this process has something raised, so the tests that need it
raise this thread's nice value to -10 (root) and restore it after. Every spawn path of the
agent under SCHED_RR, realtime I/O and OOM -900: test_child_priority.py.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gossipha import child, child_reset
from gossipha.child import Scheduling, reset_plan, start_child
from gossipha.child_reset import (
    IOPRIO_CLASS_BE,
    IOPRIO_CLASS_IDLE,
    IOPRIO_CLASS_NONE,
    IOPRIO_CLASS_RT,
)
from gossipha.resources.services import run_process
from tests.ci import cannot_run

ORDINARY = Scheduling(
    policy=os.SCHED_OTHER,
    reset_on_fork=False,
    nice=0,
    io_class=IOPRIO_CLASS_NONE,
    io_level=0,
    oom_score_adj=0,
)
# What deploy/systemd/gossipha.service gives the agent.
UNIT = Scheduling(
    policy=os.SCHED_RR,
    reset_on_fork=False,
    nice=-10,
    io_class=IOPRIO_CLASS_RT,
    io_level=4,
    oom_score_adj=-900,
)


def with_(base: Scheduling, **changes: object) -> Scheduling:
    fields = {f: getattr(base, f) for f in Scheduling.__slots__}
    fields.update(changes)
    return Scheduling(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parent", "plan"),
    [
        (ORDINARY, ()),
        (UNIT, ("sched", "nice", "io", "oom")),
        (with_(ORDINARY, policy=os.SCHED_FIFO), ("sched",)),
        # SCHED_RESET_ON_FORK: the kernel already gives the child SCHED_OTHER and nice 0
        (with_(UNIT, reset_on_fork=True), ("io", "oom")),
        # lowered is kept: nice 5, idle I/O, batch scheduling, a positive OOM score
        (with_(ORDINARY, nice=5, io_class=IOPRIO_CLASS_IDLE, oom_score_adj=300), ()),
        (with_(ORDINARY, policy=os.SCHED_BATCH), ()),
        # best effort above the level of nice 0 is raised; at it or below is not
        (with_(ORDINARY, io_class=IOPRIO_CLASS_BE, io_level=0), ("io",)),
        (with_(ORDINARY, io_class=IOPRIO_CLASS_BE, io_level=4), ()),
        (with_(ORDINARY, io_class=None, io_level=None), ()),  # unreadable: left alone
    ],
)
def test_plan_resets_only_what_is_raised(parent: Scheduling, plan: tuple[str, ...]) -> None:
    assert reset_plan(parent) == plan


def test_every_reset_is_tried_and_failures_are_reported() -> None:
    done: list[str] = []

    def ok(name: str) -> Callable[[], None]:
        return lambda: done.append(name)

    def refused() -> None:
        raise PermissionError(1, "Operation not permitted")

    steps = {"sched": ok("sched"), "nice": refused, "io": ok("io"), "oom": ok("oom")}
    failures = child_reset.reset(("oom", "nice", "sched", "io"), steps)
    assert failures == ["nice: [Errno 1] Operation not permitted"]
    assert done == ["sched", "io", "oom"]  # in the fixed order, the rest still done


def test_report_lines() -> None:
    out = child._parse(b"reset io: [Errno 1] Operation not permitted\nexec 2\n")
    assert out.failures == ("io: [Errno 1] Operation not permitted",)
    assert out.exec_errno == 2
    assert child._parse(b"").exec_errno is None
    assert child._parse(b"exec 0\n").exec_errno == child.errno.EIO


def test_ioprio_values() -> None:
    value = child_reset.ioprio_value(IOPRIO_CLASS_BE, 4)
    assert value == (2 << 13) | 4
    assert child_reset.ioprio_split(value) == (IOPRIO_CLASS_BE, 4)


def test_this_process_is_read() -> None:
    now = child.current()
    assert now.nice == os.getpriority(os.PRIO_PROCESS, 0)
    assert now.policy == os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK
    assert now.io_class is not None  # the syscall table knows this machine
    assert now.oom_score_adj == int(Path("/proc/self/oom_score_adj").read_text())


@pytest.fixture
def raised() -> Iterator[None]:
    """This thread (the event loop's, which forks) at nice -10, as under the unit."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    if child.reset_plan(child.current()):
        pytest.fail(f"this test process already runs raised: {child.current()}")
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except PermissionError:
        cannot_run("raising the nice value needs root (CAP_SYS_NICE)")
    try:
        assert child.reset_plan(child.current()) == ("nice",)
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


async def test_nothing_raised_means_no_wrapper_and_nothing_to_check() -> None:
    proc = await start_child(["sleep", "30"])
    try:
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes() == b"sleep\x0030\x00"
    finally:
        proc.kill()
        await proc.wait()
    assert await child.check_reset() == []


@pytest.mark.usefixtures("raised")
async def test_child_is_reset_in_its_own_pid_and_session() -> None:
    proc = await start_child(["sleep", "30"])
    try:
        # start_child returns once the wrapper has exec'd the program: same PID
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes() == b"sleep\x0030\x00"
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == 0
        assert os.getpgid(proc.pid) == proc.pid and os.getsid(proc.pid) == proc.pid
    finally:
        proc.kill()
        await proc.wait()
    assert os.getpriority(os.PRIO_PROCESS, 0) == -10  # the parent keeps its own
    assert await child.check_reset() == []


@pytest.mark.usefixtures("raised")
async def test_a_program_that_cannot_run_raises_as_subprocess_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        await start_child(["gossipha-no-such-program"])
    assert missing.value.filename == "gossipha-no-such-program"
    plain = tmp_path / "plain"
    plain.write_text("not executable\n")
    with pytest.raises(PermissionError):
        await start_child([str(plain)])
    with pytest.raises(FileNotFoundError):
        await start_child(["true"], cwd=tmp_path / "gone")
    with pytest.raises(KeyError):
        await start_child(["true"], user="gossipha-no-such-user")


@pytest.mark.usefixtures("raised")
async def test_the_environment_is_passed_exactly() -> None:
    # Under the C locale Python's start-up adds LC_CTYPE (PEP 538): not for the program.
    env = {"PATH": os.environ["PATH"], "LANG": "C", "SPACED": "a b=c"}
    proc = await start_child(["env"], env=env, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert sorted(out.decode().splitlines()) == sorted(f"{k}={v}" for k, v in env.items())


@pytest.mark.usefixtures("raised")
async def test_as_another_user_the_environment_is_still_exact() -> None:
    """The wrapper reads it, and the stdlib, before it takes the user's id (respawn USER):
    after that neither /proc/self nor a root-only interpreter is readable to it."""
    env = {"PATH": os.environ["PATH"], "LANG": "C"}
    proc = await start_child(
        ["sh", "-c", "id -u; env"], env=env, user="nobody", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    uid, *lines = out.decode().splitlines()
    assert int(uid) == pwd.getpwnam("nobody").pw_uid
    assert {line for line in lines if not line.startswith("PWD=")} == {
        f"{k}={v}" for k, v in env.items()
    }


@pytest.mark.usefixtures("raised")
async def test_signals_python_ignores_are_not_ignored_by_the_program() -> None:
    proc = await start_child(["grep", "^SigIgn:", "/proc/self/status"], stdout=-1)
    out, _ = await proc.communicate()
    ignored = int(out.split()[1], 16)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (sig - 1)), sig


@pytest.mark.usefixtures("raised")
async def test_run_process_output_exit_code_and_timeout(tmp_path: Path) -> None:
    env = dict(os.environ)
    run = await run_process(["sh", "-c", "echo out; echo err >&2; exit 3"], env=env, timeout_s=10)
    assert (run.exit_code, run.output, run.error) == (3, "out\nerr", None)
    missing = await run_process([str(tmp_path / "nope")], env=env, timeout_s=10)
    assert missing.exit_code is None and missing.error is not None
    assert "cannot run" in missing.error and "nope" in missing.error
    pidfile = tmp_path / "pid"
    hung = await run_process(
        ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], env=env, timeout_s=0.5
    )
    assert hung.timed_out
    helper = int(pidfile.read_text())
    for _ in range(100):  # the whole group was killed, the backgrounded sleep with it
        stat = Path(f"/proc/{helper}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the action's helper outlived its timeout")


def test_the_wrapper_runs_with_the_standard_library_only() -> None:
    """`-I -S`: no site-packages, no PYTHONPATH, not even gossipha itself."""
    source = Path(child.RESET_SCRIPT).read_text()
    imports = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.lstrip().startswith(("import ", "from "))
    }
    assert imports <= set(sys.stdlib_module_names) | {"__future__"}, imports


def _state(pid: int) -> str:
    """Its /proc state letter; "gone" once reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


_DIES = """
import asyncio, os
from gossipha.child import start_child

async def main() -> None:
    quiet = {"stdout": asyncio.subprocess.DEVNULL}  # our stdout is the test's pipe
    ended = await start_child(["sleep", "60"], end_with_agent=True, **quiet)
    as_user = await start_child(["sleep", "60"], end_with_agent=True, user="nobody", **quiet)
    kept = await start_child(["sleep", "60"], **quiet)
    print(ended.pid, as_user.pid, kept.pid, flush=True)
    os._exit(0)  # as a crash, or systemd's SIGKILL at TimeoutStopSec: no cleanup

asyncio.run(main())
"""


async def test_a_respawned_program_ends_with_the_agent_and_a_service_does_not() -> None:
    """With KillMode=process systemd leaves the agent's children alone: a service must
    outlive the agent (the next one adopts it), a respawned helper must not."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DIES, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await agent.communicate()
    ended, as_user, kept = (int(pid) for pid in out.split())
    try:
        for _ in range(250):
            if {_state(ended), _state(as_user)} <= {"Z", "gone"}:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail(f"still running after the agent died: {ended}, {as_user}")
        assert _state(kept) not in ("Z", "gone")
    finally:
        os.kill(kept, signal.SIGKILL)
