"""Health checks against a real HTTP server on 127.0.0.1 and real commands; tracker decisions."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gossipha.config.model import HealthCheck, HealthCheckKind
from gossipha.resources.health import (
    CheckResult,
    GroupHealth,
    HealthDecision,
    HealthMonitor,
    HealthTracker,
    run_check,
)

D = HealthDecision


@dataclass
class Site:
    """The test web server: `healthy` flips /toggle between 200 and 503."""

    base: str
    healthy: bool = True
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    state = Site(base="")

    async def page(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        return web.Response(text="1111111111111master server")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="internal error")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="too late")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    async def toggle(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        if state.healthy:
            return web.Response(text="ok")
        return web.Response(status=503, text="down")

    async def html(request: web.Request) -> web.Response:
        charset = request.query.get("charset")
        ctype = "text/html" + (f"; charset={charset}" if charset else "")
        return web.Response(
            body=b"<h1>222222222222 slave server</h1>", headers={"Content-Type": ctype}
        )

    app = web.Application()
    app.router.add_get("/html", html)
    app.router.add_get("/", page)
    app.router.add_get("/broken", broken)
    app.router.add_get("/slow", slow)
    app.router.add_get("/moved", moved)
    app.router.add_get("/toggle", toggle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def http(url: str, **kw: object) -> HealthCheck:
    return HealthCheck("web", HealthCheckKind.HTTP, url=url, **kw)  # type: ignore[arg-type]


async def test_http_status_and_body_match(site: Site) -> None:
    check = http(site.base + "/", expect_body="master server")
    result = await run_check(check, group="web")
    assert result.healthy, result.detail
    assert (result.group, result.check) == ("web", "web")
    assert "200" in result.detail


@pytest.mark.parametrize("query", ["", "?charset=latin-1", "?charset=no-such-charset"])
async def test_http_body_without_or_with_odd_charset(site: Site, query: str) -> None:
    """nginx sends text/html without a charset; an unknown charset falls back to UTF-8."""
    check = http(site.base + "/html" + query, expect_body="slave server")
    result = await run_check(check, group="web")
    assert result.healthy, result.detail


async def test_http_500_is_unhealthy(site: Site) -> None:
    result = await run_check(http(site.base + "/broken"), group="web")
    assert not result.healthy
    assert "status 500, expected 200" in result.detail


async def test_http_expected_status_other_than_200(site: Site) -> None:
    assert (await run_check(http(site.base + "/broken", expect_status=500), group="g")).healthy


async def test_http_wrong_body_is_unhealthy(site: Site) -> None:
    result = await run_check(http(site.base + "/", expect_body="slave server"), group="web")
    assert not result.healthy
    assert "body lacks 'slave server'" in result.detail


async def test_http_slow_server_times_out(site: Site) -> None:
    t0 = time.monotonic()
    result = await run_check(http(site.base + "/slow", timeout_s=0.3), group="web")
    assert not result.healthy
    assert "timed out after 0.3s" in result.detail
    assert time.monotonic() - t0 < 1.5


async def test_http_redirect_is_not_followed(site: Site) -> None:
    result = await run_check(http(site.base + "/moved"), group="web")
    assert not result.healthy and "status 302" in result.detail


async def test_http_connection_refused_is_unhealthy() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        result = await run_check(http(f"http://127.0.0.1:{port}/"), group="web")
    assert not result.healthy
    assert "ClientConnectorError" in result.detail or "refused" in result.detail.lower()


async def test_http_shared_session(site: Site) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            assert (await run_check(http(site.base + "/"), group="g", session=session)).healthy
    assert site.hits == ["/", "/", "/"]


def command(*argv: str, timeout_s: float = 1.0) -> HealthCheck:
    return HealthCheck("cmd", HealthCheckKind.COMMAND, command=argv, timeout_s=timeout_s)


async def test_command_check_exit_codes_and_env(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    ok = await run_check(
        command("sh", "-c", f'echo "$GOSSIPHA_GROUP $GOSSIPHA_CHECK" > {seen}'), group="web"
    )
    assert ok.healthy, ok.detail
    assert seen.read_text() == "web cmd\n"
    bad = await run_check(command("sh", "-c", "echo nginx is down; exit 2"), group="web")
    assert not bad.healthy
    assert "exit 2" in bad.detail and "nginx is down" in bad.detail
    missing = await run_check(command(str(tmp_path / "nope")), group="web")
    assert not missing.healthy and "cannot run" in missing.detail


async def test_command_check_timeout_kills_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    t0 = time.monotonic()
    result = await run_check(
        command("sh", "-c", f"echo $$ > {pidfile}; exec sleep 300", timeout_s=0.3), group="g"
    )
    assert time.monotonic() - t0 < 1.5
    assert not result.healthy and "timed out after 0.3s" in result.detail
    pid = int(pidfile.read_text())
    assert await _gone(pid)


async def _gone(pid: int, within_s: float = 2.0) -> bool:
    """True once `pid` has exited; SIGKILL delivery is asynchronous, so poll briefly."""
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --- tracker (pure) -------------------------------------------------------------------------


def feed(tracker: HealthTracker, pattern: str) -> list[HealthDecision]:
    return [tracker.record(c == "+") for c in pattern]


def test_tracker_restarts_then_gives_up_then_recovers() -> None:
    t = HealthTracker(failures=3, max_restarts=2)
    assert feed(t, "--") == [D.FAILING, D.FAILING]
    assert feed(t, "-") == [D.RESTART]
    assert feed(t, "---") == [D.FAILING, D.FAILING, D.RESTART]
    assert t.restarts == 2 and t.eligible
    assert feed(t, "---") == [D.FAILING, D.FAILING, D.GIVE_UP]
    assert not t.eligible
    assert feed(t, "----") == [D.FAILING] * 4, "give-up is decided once"
    assert not t.eligible
    assert feed(t, "+") == [D.RECOVERED]
    assert t.eligible and t.restarts == 0 and t.consecutive_failures == 0
    assert feed(t, "+") == [D.HEALTHY]


def test_tracker_success_resets_counts() -> None:
    t = HealthTracker(failures=3, max_restarts=1)
    assert feed(t, "--+--+--+") == [D.FAILING, D.FAILING, D.HEALTHY] * 3
    assert feed(t, "---") == [D.FAILING, D.FAILING, D.RESTART]
    assert feed(t, "+---") == [D.HEALTHY, D.FAILING, D.FAILING, D.RESTART], "restarts reset too"


def test_tracker_without_restarts_gives_up_at_threshold() -> None:
    t = HealthTracker(failures=1, max_restarts=0)
    assert feed(t, "-") == [D.GIVE_UP]
    assert not t.eligible
    t.reset()
    assert t.eligible


def test_tracker_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        HealthTracker(failures=0, max_restarts=1)
    with pytest.raises(ValueError):
        HealthTracker(failures=1, max_restarts=-1)


def test_group_health_is_ineligible_while_any_check_gave_up() -> None:
    checks = [
        HealthCheck("a", HealthCheckKind.COMMAND, command=("true",), failures=1, max_restarts=0),
        HealthCheck("b", HealthCheckKind.COMMAND, command=("true",), failures=2, max_restarts=0),
    ]
    health = GroupHealth("web", checks)

    def result(check: str, healthy: bool) -> CheckResult:
        return CheckResult("web", check, healthy, "", 0.0)

    assert health.record(result("b", False)) is D.FAILING
    assert health.eligible
    assert health.record(result("a", False)) is D.GIVE_UP
    assert not health.eligible
    assert health.record(result("b", True)) is D.HEALTHY
    assert not health.eligible, "check a still gave up"
    assert health.record(result("a", True)) is D.RECOVERED
    assert health.eligible


# --- monitor --------------------------------------------------------------------------------


async def test_monitor_drives_tracker_to_restart_when_site_fails(site: Site) -> None:
    """The runtime's loop in miniature: results to a queue, decisions from GroupHealth."""
    check = HealthCheck(
        "toggle", HealthCheckKind.HTTP, url=site.base + "/toggle", interval_s=0.05,
        timeout_s=0.5, failures=3, max_restarts=1,
    )  # fmt: skip
    queue: asyncio.Queue[CheckResult] = asyncio.Queue(maxsize=16)
    monitor = HealthMonitor("web", [check], queue.put_nowait)
    health = GroupHealth("web", [check])
    decisions: list[HealthDecision] = []
    async with asyncio.timeout(5):
        task = asyncio.ensure_future(monitor.run())
        try:
            for _ in range(2):
                decisions.append(health.record(await queue.get()))
            site.healthy = False
            while D.GIVE_UP not in decisions:
                decisions.append(health.record(await queue.get()))
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert decisions[:2] == [D.HEALTHY, D.HEALTHY]
    failing = [d for d in decisions[2:] if d is not D.HEALTHY]
    assert failing == [D.FAILING, D.FAILING, D.RESTART, D.FAILING, D.FAILING, D.GIVE_UP]
    assert not health.eligible


async def test_monitor_keeps_its_interval_and_runs_every_check(site: Site, tmp_path: Path) -> None:
    checks = [
        HealthCheck("page", HealthCheckKind.HTTP, url=site.base + "/", interval_s=0.1),
        HealthCheck("cmd", HealthCheckKind.COMMAND, command=("true",), interval_s=0.1),
    ]
    results: list[CheckResult] = []
    monitor = HealthMonitor("web", checks, results.append)
    task = asyncio.ensure_future(monitor.run())
    await asyncio.sleep(0.55)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for name in ("page", "cmd"):
        mine = [r for r in results if r.check == name]
        assert 3 <= len(mine) <= 7, (name, len(mine))
        assert all(r.healthy for r in mine), mine


async def test_monitor_cancel_kills_a_running_probe(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    check = HealthCheck(
        "hang", HealthCheckKind.COMMAND, timeout_s=30,
        command=("sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"),
    )  # fmt: skip
    task = asyncio.ensure_future(HealthMonitor("web", [check], lambda r: None).run())
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.02)
    pid = int(pidfile.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _gone(pid)


async def test_monitor_sink_error_reaches_the_caller() -> None:
    def sink(result: CheckResult) -> None:
        raise RuntimeError("sink broke")

    check = HealthCheck("c", HealthCheckKind.COMMAND, command=("true",), interval_s=0.05)
    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.timeout(2):
            await HealthMonitor("web", [check], sink).run()
    assert info.group_contains(RuntimeError, match="sink broke")


async def test_monitor_without_checks_returns() -> None:
    await HealthMonitor("web", [], lambda r: None).run()
