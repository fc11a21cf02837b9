"""Services on this host: start, stop and status for Heartbeat, LSB, systemd, OCF and plain ones.

Every action is a child process in its own session (process group), started with ordinary
scheduling (`gossipha.child`) and run with asyncio so the loop never blocks, bounded by the
resource's `timeout_s`. On timeout or cancellation the whole process group is killed by PID
(SIGKILL), so a hung script cannot leave helpers behind. Output (stdout and stderr
together) is kept to the last `OUTPUT_LIMIT_BYTES` for logs. Children that a start script
leaves running (the daemon itself) are not waited for and never killed after a
normal exit, even if they still hold the output pipe.

Stop is idempotent: stopping a stopped service is success (LSB and OCF semantics; for scripts
that fail on an already-stopped service, a status that says "not running" makes it success).

Every action sees `GOSSIPHA_EPOCH`, `GOSSIPHA_GROUP`, `GOSSIPHA_ACTION` and `GOSSIPHA_RESOURCE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gossipha.aio import pipe_to, within
from gossipha.child import start_child
from gossipha.config.model import Resource, ServiceKind, ServiceResource

OUTPUT_LIMIT_BYTES = 4096
# After the action exits, how long to wait for the rest of its output (a daemon it started
# may keep the pipe open forever; we stop reading then, we do not wait for it).
OUTPUT_GRACE_S = 0.2
# After SIGKILL of the group, how long to wait for the action to be reaped.
REAP_TIMEOUT_S = 5.0

DEFAULT_RESOURCE_D = Path("/etc/ha.d/resource.d")
DEFAULT_INIT_D = Path("/etc/init.d")
DEFAULT_OCF_ROOT = Path("/usr/lib/ocf")
# sd_booted(3): systemd is PID 1 exactly when this directory exists.
SYSTEMD_RUNTIME_DIR = Path("/run/systemd/system")
SYSTEMCTL = "systemctl"


class ServiceAction(enum.Enum):
    START = "start"
    STOP = "stop"
    STATUS = "status"


# OCF resource agent API, exit codes (OCF 1.1, "Exit codes").
OCF_SUCCESS = 0
OCF_ERR_GENERIC = 1
OCF_NOT_RUNNING = 7
OCF_CODES: Mapping[int, str] = {
    0: "OCF_SUCCESS",
    1: "OCF_ERR_GENERIC",
    2: "OCF_ERR_ARGS",
    3: "OCF_ERR_UNIMPLEMENTED",
    4: "OCF_ERR_PERM",
    5: "OCF_ERR_INSTALLED",
    6: "OCF_ERR_CONFIGURED",
    7: "OCF_NOT_RUNNING",
    8: "OCF_RUNNING_PROMOTED",
    9: "OCF_FAILED_PROMOTED",
    190: "OCF_DEGRADED",
    191: "OCF_DEGRADED_PROMOTED",
}

# LSB init script status exit codes (LSB core, "Init Script Actions").
LSB_RUNNING = 0
LSB_STOPPED = 3
LSB_STATUS_CODES: Mapping[int, str] = {
    0: "running",
    1: "dead, pid file exists",
    2: "dead, lock file exists",
    3: "not running",
    4: "status unknown",
}
_LSB_NOT_RUNNING = frozenset((1, 2, 3))

# Heartbeat resource.d status: "it has to print either OK or running when the resource is
# active, and it CANNOT print either of those when it's inactive; we ignore the return code".
_HEARTBEAT_RUNNING = re.compile(r"\brunning\b|\bOK\b", re.IGNORECASE)
_HEARTBEAT_NOT_RUNNING = re.compile(r"\bnot\s+running\b|\bstopped\b", re.IGNORECASE)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSTANCE_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class ServiceOutcome:
    """What one action did. For status, `ok` means "running".

    `running` is set by status when the answer is definite (True/False) and None when it is
    not (timeout, error codes); start/stop leave it None. `detail` is one line of verdict
    followed by the tail of the action's output.
    """

    ok: bool
    exit_code: int | None
    detail: str
    duration_s: float
    timed_out: bool = False
    running: bool | None = None


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """A finished child: exit code (None if it could not run or was killed on timeout)."""

    exit_code: int | None
    output: str
    duration_s: float
    timed_out: bool = False
    error: str | None = None  # could not be started (missing, not executable)


class _TailProtocol(asyncio.Protocol):
    """Keeps the last `limit` bytes read from a pipe; `done` resolves at EOF."""

    def __init__(self, limit: int, done: asyncio.Future[None]) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.dropped = 0
        self.done = done

    def data_received(self, data: bytes) -> None:
        self.buf += data
        excess = len(self.buf) - self.limit
        if excess > 0:
            del self.buf[:excess]
            self.dropped += excess

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def text(self) -> str:
        out = self.buf.decode("utf-8", "replace").strip()
        if self.dropped:
            out = f"[{self.dropped} earlier bytes dropped]\n{out}"
        return out


def _kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid` (the action runs in its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout_s: float,
    output_limit_bytes: int = OUTPUT_LIMIT_BYTES,
    cwd: str | Path = "/",
) -> ProcessResult:
    """Run `argv` (no shell) in a new session with `env`; kill its process group on timeout.

    Cancel-safe: if the caller is cancelled, the group is killed before the cancel propagates.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    done: asyncio.Future[None] = loop.create_future()
    protocol = _TailProtocol(output_limit_bytes, done)
    transport, write_fd = await pipe_to(protocol)
    try:
        try:
            proc = await start_child(argv, env=env, cwd=cwd, stdout=write_fd, stderr=write_fd)
        except OSError as exc:
            return ProcessResult(
                None, "", loop.time() - started, error=f"cannot run {argv[0]}: {exc}"
            )
        finally:
            os.close(write_fd)
        timed_out = False
        try:
            await within(proc.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
                with contextlib.suppress(TimeoutError):
                    await within(asyncio.shield(proc.wait()), REAP_TIMEOUT_S)
        if timed_out:
            # The group is dead, so nothing holds the pipe unless a member left the session.
            with contextlib.suppress(TimeoutError):
                await within(asyncio.shield(done), OUTPUT_GRACE_S)
            return ProcessResult(None, protocol.text(), loop.time() - started, timed_out=True)
        with contextlib.suppress(TimeoutError):
            await within(asyncio.shield(done), OUTPUT_GRACE_S)
        return ProcessResult(proc.returncode, protocol.text(), loop.time() - started)
    finally:
        transport.close()


def _action_env(
    res: ServiceResource,
    action: ServiceAction,
    *,
    epoch: int,
    group: str,
    env: Mapping[str, str] | None,
) -> dict[str, str]:
    merged = dict(os.environ)
    if env is not None:
        merged.update(env)
    merged["GOSSIPHA_EPOCH"] = str(epoch)
    merged["GOSSIPHA_GROUP"] = group
    merged["GOSSIPHA_ACTION"] = action.value
    merged["GOSSIPHA_RESOURCE"] = res.name
    return merged


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s"


def _outcome(
    res: ServiceResource,
    action: ServiceAction,
    run: ProcessResult,
    *,
    ok: bool,
    verdict: str,
    running: bool | None = None,
) -> ServiceOutcome:
    head = f"{res.name} {action.value}: {verdict} in {run.duration_s:.2f}s"
    detail = f"{head}\n{run.output}" if run.output else head
    return ServiceOutcome(ok, run.exit_code, detail, run.duration_s, run.timed_out, running)


def _not_run(
    res: ServiceResource,
    action: ServiceAction,
    why: str,
    *,
    ok: bool = False,
    running: bool | None = None,
) -> ServiceOutcome:
    """An action that was not attempted (misconfiguration, no systemd)."""
    return ServiceOutcome(ok, None, f"{res.name} {action.value}: {why}", 0.0, False, running)


def _failed_run(res: ServiceResource, action: ServiceAction, run: ProcessResult) -> ServiceOutcome:
    """The outcome when the action did not finish: could not start, or timed out."""
    if run.timed_out:
        return _outcome(
            res, action, run, ok=False, verdict=f"timed out after {_fmt_s(res.timeout_s)}"
        )
    assert run.error is not None
    return _outcome(res, action, run, ok=False, verdict=run.error)


# --- argv and env per kind (pure) ---------------------------------------------------------


def ocf_root_for(path: Path) -> Path:
    """OCF_ROOT for an agent at ROOT/resource.d/PROVIDER/TYPE; else the Debian default."""
    if len(path.parents) >= 3 and path.parents[1].name == "resource.d":
        return path.parents[2]
    return DEFAULT_OCF_ROOT


def ocf_env(res: ServiceResource, *, group: str, timeout_s: float) -> dict[str, str]:
    """The OCF environment for `res`; ValueError for an argument that is not NAME=VALUE."""
    agent = _ocf_agent(res)
    provider = res.ocf_provider or agent.parent.name
    kind = res.ocf_type or agent.name
    out = {
        "OCF_ROOT": str(ocf_root_for(agent)),
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": _INSTANCE_UNSAFE.sub("_", f"{group}-{kind}"),
        "OCF_RESOURCE_TYPE": kind,
        "OCF_RESOURCE_PROVIDER": provider,
        "OCF_RESKEY_CRM_meta_timeout": str(int(timeout_s * 1000)),
    }
    for arg in res.args:
        name, sep, value = arg.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise ValueError(f"OCF parameter {arg!r}: expected NAME=VALUE")
        out[f"OCF_RESKEY_{name}"] = value
    return out


def _ocf_agent(res: ServiceResource) -> Path:
    if res.path is not None:
        return res.path
    if res.ocf_provider is None or res.ocf_type is None:
        raise ValueError("OCF resource without path or provider/type")
    return DEFAULT_OCF_ROOT / "resource.d" / res.ocf_provider / res.ocf_type


def _script(res: ServiceResource) -> Path:
    if res.path is not None:
        return res.path
    base = DEFAULT_RESOURCE_D if res.kind is ServiceKind.RESOURCE_D else DEFAULT_INIT_D
    return base / res.name


def script_argv(res: ServiceResource, action: ServiceAction) -> list[str]:
    """Heartbeat's call: `SCRIPT ARGS... ACTION` (haresources `name::a::b` args go first)."""
    return [str(_script(res)), *res.args, action.value]


def _unit(res: ServiceResource) -> str:
    if res.unit is not None:
        return res.unit
    return res.name if res.name.endswith((".service", ".target")) else f"{res.name}.service"


def systemd_booted() -> bool:
    """sd_booted(3): True when systemd runs as PID 1 on this host."""
    return SYSTEMD_RUNTIME_DIR.is_dir()


def heartbeat_status_running(output: str, exit_code: int) -> bool:
    """Heartbeat's rule: running iff the output says OK or running; no output: exit code 0."""
    if _HEARTBEAT_NOT_RUNNING.search(output):
        return False
    if _HEARTBEAT_RUNNING.search(output):
        return True
    return output.strip() == "" and exit_code == 0


# --- actions per kind -----------------------------------------------------------------------


async def _run_script(
    res: ServiceResource, action: ServiceAction, env: dict[str, str]
) -> ProcessResult:
    return await run_process(script_argv(res, action), env=env, timeout_s=res.timeout_s)


async def _script_action(
    res: ServiceResource, action: ServiceAction, env: dict[str, str]
) -> ServiceOutcome:
    """RESOURCE_D and LSB: Heartbeat's scripts and init scripts."""
    run = await _run_script(res, action, env)
    if run.exit_code is None:
        return _failed_run(res, action, run)
    code = run.exit_code
    if action is ServiceAction.STATUS:
        if res.kind is ServiceKind.RESOURCE_D:
            running = heartbeat_status_running(run.output, code)
            verdict = "running" if running else "not running"
            return _outcome(
                res, action, run, ok=running, verdict=f"{verdict} (exit {code})", running=running
            )
        what = LSB_STATUS_CODES.get(code, "status unknown")
        known = code == LSB_RUNNING or code in _LSB_NOT_RUNNING
        return _outcome(
            res,
            action,
            run,
            ok=code == LSB_RUNNING,
            verdict=f"{what} (exit {code})",
            running=(code == LSB_RUNNING) if known else None,
        )
    if code == 0:
        return _outcome(res, action, run, ok=True, verdict="done (exit 0)", running=None)
    if action is ServiceAction.STOP:
        return await _confirm_stopped(res, run, env)
    return _outcome(res, action, run, ok=False, verdict=f"failed (exit {code})")


async def _confirm_stopped(
    res: ServiceResource, stop: ProcessResult, env: dict[str, str]
) -> ServiceOutcome:
    """A stop that failed is still a success when status says the service is not running."""
    status_env = dict(env, GOSSIPHA_ACTION=ServiceAction.STATUS.value)
    status = await _status(res, status_env)
    if status.running is False:
        return _outcome(
            res,
            ServiceAction.STOP,
            stop,
            ok=True,
            verdict=f"exit {stop.exit_code}, but status says not running: stopped",
        )
    return _outcome(
        res,
        ServiceAction.STOP,
        stop,
        ok=False,
        verdict=f"failed (exit {stop.exit_code}); status: {status.detail.splitlines()[0]}",
    )


async def _ocf_action(
    res: ServiceResource, action: ServiceAction, group: str, env: dict[str, str]
) -> ServiceOutcome:
    try:
        env = env | ocf_env(res, group=group, timeout_s=res.timeout_s)
        agent = _ocf_agent(res)
    except ValueError as exc:
        return _not_run(res, action, str(exc))
    verb = "monitor" if action is ServiceAction.STATUS else action.value
    run = await run_process([str(agent), verb], env=env, timeout_s=res.timeout_s)
    if run.exit_code is None:
        return _failed_run(res, action, run)
    code = run.exit_code
    name = OCF_CODES.get(code, f"unknown OCF code {code}")
    if action is ServiceAction.STATUS:
        if code == OCF_SUCCESS:
            return _outcome(res, action, run, ok=True, verdict=f"running ({name})", running=True)
        if code == OCF_NOT_RUNNING:
            return _outcome(
                res, action, run, ok=False, verdict=f"not running ({name})", running=False
            )
        return _outcome(res, action, run, ok=False, verdict=f"monitor failed ({name}, exit {code})")
    if code == OCF_SUCCESS:
        return _outcome(res, action, run, ok=True, verdict=f"done ({name})")
    if action is ServiceAction.STOP and code == OCF_NOT_RUNNING:
        return _outcome(res, action, run, ok=True, verdict=f"already stopped ({name})")
    return _outcome(res, action, run, ok=False, verdict=f"failed ({name}, exit {code})")


async def _systemd_action(
    res: ServiceResource, action: ServiceAction, env: dict[str, str]
) -> ServiceOutcome:
    unit = _unit(res)
    if not systemd_booted():
        why = f"systemd is not running as PID 1 (no {SYSTEMD_RUNTIME_DIR}); cannot manage {unit}"
        if action is ServiceAction.STOP:
            # Without systemd the unit cannot be active: stopping it is trivially done.
            return _not_run(res, action, f"{why}; unit cannot be active, nothing to stop", ok=True)
        if action is ServiceAction.STATUS:
            return _not_run(res, action, why, running=False)
        return _not_run(res, action, why)
    verb = "is-active" if action is ServiceAction.STATUS else action.value
    run = await run_process(
        [SYSTEMCTL, "--no-ask-password", verb, unit], env=env, timeout_s=res.timeout_s
    )
    if run.exit_code is None:
        return _failed_run(res, action, run)
    code = run.exit_code
    if action is ServiceAction.STATUS:
        state = run.output.strip().splitlines()[-1] if run.output.strip() else f"exit {code}"
        running = code == 0
        return _outcome(res, action, run, ok=running, verdict=f"{unit} {state}", running=running)
    if code == 0:
        return _outcome(res, action, run, ok=True, verdict=f"systemctl {verb} {unit} done")
    return _outcome(res, action, run, ok=False, verdict=f"systemctl {verb} {unit} exit {code}")


async def _command_action(
    res: ServiceResource, action: ServiceAction, env: dict[str, str]
) -> ServiceOutcome:
    argv = {
        ServiceAction.START: res.start,
        ServiceAction.STOP: res.stop,
        ServiceAction.STATUS: res.status,
    }[action]
    if not argv:
        return _not_run(res, action, f"no {action.value} command configured")
    run = await run_process(argv, env=env, timeout_s=res.timeout_s)
    if run.exit_code is None:
        return _failed_run(res, action, run)
    code = run.exit_code
    if action is ServiceAction.STATUS:
        running = code == 0
        verdict = "running" if running else "not running"
        return _outcome(
            res, action, run, ok=running, verdict=f"{verdict} (exit {code})", running=running
        )
    if code == 0:
        return _outcome(res, action, run, ok=True, verdict="done (exit 0)")
    if action is ServiceAction.STOP and res.status:
        return await _confirm_stopped(res, run, env)
    return _outcome(res, action, run, ok=False, verdict=f"failed (exit {code})")


async def _status(res: ServiceResource, env: dict[str, str]) -> ServiceOutcome:
    return await _dispatch(res, ServiceAction.STATUS, env.get("GOSSIPHA_GROUP", ""), env)


async def _dispatch(
    res: ServiceResource, action: ServiceAction, group: str, env: dict[str, str]
) -> ServiceOutcome:
    match res.kind:
        case ServiceKind.RESOURCE_D | ServiceKind.LSB:
            return await _script_action(res, action, env)
        case ServiceKind.OCF:
            return await _ocf_action(res, action, group, env)
        case ServiceKind.SYSTEMD:
            return await _systemd_action(res, action, env)
        case ServiceKind.COMMAND:
            return await _command_action(res, action, env)


# --- public API -----------------------------------------------------------------------------


async def run_service_action(
    res: ServiceResource,
    action: ServiceAction,
    *,
    epoch: int,
    group: str,
    env: Mapping[str, str] | None = None,
) -> ServiceOutcome:
    """Perform `action` on `res`; never raises for a failing service (see ServiceOutcome)."""
    full_env = _action_env(res, action, epoch=epoch, group=group, env=env)
    return await _dispatch(res, action, group, full_env)


async def start_service(
    res: ServiceResource, *, epoch: int, group: str, env: Mapping[str, str] | None = None
) -> ServiceOutcome:
    """Start `res`; ok when it reports success (starting a running service is success)."""
    return await run_service_action(res, ServiceAction.START, epoch=epoch, group=group, env=env)


async def stop_service(
    res: ServiceResource, *, epoch: int, group: str, env: Mapping[str, str] | None = None
) -> ServiceOutcome:
    """Stop `res`; ok when it is stopped afterwards, including when it was not running."""
    return await run_service_action(res, ServiceAction.STOP, epoch=epoch, group=group, env=env)


async def status_service(
    res: ServiceResource, *, epoch: int, group: str, env: Mapping[str, str] | None = None
) -> ServiceOutcome:
    """Is `res` running? ok=True means running; `running` is None when the answer is unknown.

    LSB: exit 0 running, 1-3 not running, else unknown. OCF monitor: 0 running, 7 not running.
    Heartbeat resource.d: output saying "OK"/"running" (exit code ignored, as Heartbeat did;
    a script printing nothing is judged by exit code 0). COMMAND: exit 0 running.
    """
    return await run_service_action(res, ServiceAction.STATUS, epoch=epoch, group=group, env=env)


@dataclass(frozen=True, slots=True)
class GroupStep:
    """One service action inside a group start or stop, in the order performed."""

    resource: ServiceResource
    outcome: ServiceOutcome


async def start_group(
    resources: Sequence[Resource],
    *,
    epoch: int,
    group: str,
    env: Mapping[str, str] | None = None,
) -> list[GroupStep]:
    """Start the services of `resources` in order, stopping at the first failure.

    VIPs are skipped (the runtime places them). The caller decides whether to roll back:
    the steps say which services were started.
    """
    steps: list[GroupStep] = []
    for res in resources:
        if not isinstance(res, ServiceResource):
            continue
        outcome = await start_service(res, epoch=epoch, group=group, env=env)
        steps.append(GroupStep(res, outcome))
        if not outcome.ok:
            break
    return steps


async def stop_group(
    resources: Sequence[Resource],
    *,
    epoch: int,
    group: str,
    env: Mapping[str, str] | None = None,
) -> list[GroupStep]:
    """Stop the services of `resources` in reverse order; a failure does not stop the rest."""
    steps: list[GroupStep] = []
    for res in reversed(resources):
        if not isinstance(res, ServiceResource):
            continue
        outcome = await stop_service(res, epoch=epoch, group=group, env=env)
        steps.append(GroupStep(res, outcome))
    return steps
