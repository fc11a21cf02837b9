"""Alerts: the pure AlertState, the hook runner's bounds, and Alertmanager delivery."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gossipha.config.model import Hook
from gossipha.core.types import Notice, NoticeKind
from gossipha.observe.alerts import (
    AlertmanagerClient,
    AlertState,
    HookRunner,
    alert_payload,
)
from tests.ci import cannot_run

K = NoticeKind


# ---------------------------------------------------------------------------- AlertState


def names(alerts: list) -> list[tuple[str, bool]]:  # type: ignore[type-arg]
    return [(a.name, a.firing) for a in alerts]


def test_peer_warn_dead_recovered() -> None:
    st = AlertState("master")
    assert names(st.apply(Notice(K.PEER_WARN, peer="slave"), 1.0)) == [("GossiphaPeerWarn", True)]
    assert st.apply(Notice(K.PEER_WARN, peer="slave"), 2.0) == []  # already firing
    assert names(st.apply(Notice(K.PEER_DEAD, peer="slave"), 3.0)) == [("GossiphaPeerDead", True)]
    assert {a.name for a in st.firing()} == {"GossiphaPeerWarn", "GossiphaPeerDead"}
    resolved = st.apply(Notice(K.PEER_RECOVERED, peer="slave"), 9.0)
    assert sorted(names(resolved)) == [("GossiphaPeerDead", False), ("GossiphaPeerWarn", False)]
    assert all(a.ends_wall == 9.0 and a.starts_wall in (1.0, 3.0) for a in resolved)
    assert st.firing() == []


def test_other_peer_does_not_resolve() -> None:
    st = AlertState("master")
    st.apply(Notice(K.PEER_DEAD, peer="a"), 1.0)
    assert st.apply(Notice(K.PEER_RECOVERED, peer="b"), 2.0) == []
    assert st.apply(Notice(K.REFUTED, peer="master"), 2.0) == []  # we refuted: not about a
    assert names(st.apply(Notice(K.REFUTED, peer="a"), 3.0)) == [("GossiphaPeerDead", False)]


def test_link_and_ping() -> None:
    st = AlertState("master")
    a = st.apply(Notice(K.LINK_DOWN, peer="slave", link="eth1"), 1.0)
    assert names(a) == [("GossiphaLinkDown", True)] and a[0].link == "eth1"
    assert st.apply(Notice(K.LINK_UP, peer="slave", link="eth2"), 2.0) == []
    assert names(st.apply(Notice(K.LINK_UP, peer="slave", link="eth1"), 2.0)) == [
        ("GossiphaLinkDown", False)
    ]
    p = st.apply(Notice(K.PING_LOST, detail="gw"), 3.0)
    assert names(p) == [("GossiphaPingLost", True)] and p[0].link == "gw"
    assert names(st.apply(Notice(K.PING_BACK, detail="gw"), 4.0)) == [("GossiphaPingLost", False)]


def test_group_alerts_resolve_on_failover_holders_or_ttl() -> None:
    st = AlertState("master", ttl_s=100.0)
    st.apply(Notice(K.NO_HOLDER, group="web"), 1.0)
    st.apply(Notice(K.SPLIT_BRAIN_RISK, group="db"), 1.0)
    st.apply(Notice(K.RESOURCE_FAILED, group="db", detail="start: exit 1"), 1.0)
    assert st.holders({"web": None}, 2.0) == []
    assert names(st.holders({"web": "slave"}, 3.0)) == [("GossiphaNoHolder", False)]
    assert names(st.expire(50.0)) == []
    st.apply(Notice(K.RESOURCE_FAILED, group="db"), 60.0)  # re-fired: ttl restarts
    assert names(st.expire(101.0)) == [("GossiphaSplitBrainRisk", False)]
    assert names(st.apply(Notice(K.FAILOVER_COMPLETED, group="db"), 102.0)) == [
        ("GossiphaResourceFailed", False)
    ]


def test_current_notices_for_reannounce() -> None:
    st = AlertState("master")
    st.apply(Notice(K.PEER_DEAD, peer="slave", detail="silent"), 1.0)
    st.apply(Notice(K.LINK_DOWN, peer="x", link="l"), 1.0)
    st.apply(Notice(K.LINK_UP, peer="x", link="l"), 2.0)
    assert st.current_notices() == [Notice(K.PEER_DEAD, peer="slave", detail="silent")]


def test_payload_labels() -> None:
    st = AlertState("master")
    (a,) = st.apply(Notice(K.PEER_DEAD, peer="slave"), 1_700_000_000.0)
    body = alert_payload(a, cluster="c", node="master")
    assert body["labels"] == {
        "alertname": "GossiphaPeerDead",
        "cluster": "c",
        "node": "master",
        "severity": "critical",
        "peer": "slave",
    }
    assert body["startsAt"] == "2023-11-14T22:13:20.000+00:00" and "endsAt" not in body


# ---------------------------------------------------------------------------- hooks


def script(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


async def wait_for(cond, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(runner: HookRunner) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_hook_environment_and_filter(tmp_path: Path) -> None:
    out = tmp_path / "env"
    hook = script(tmp_path, "h", f"env | grep ^GOSSIPHA_ | sort >> {out}\necho --- >> {out}\n")
    only_dead = script(tmp_path, "d", f"echo dead-hook >> {tmp_path / 'dead'}\n")
    runner = HookRunner(
        [Hook(hook), Hook(only_dead, events=("peer_dead",))], 2, cluster="c", node="master"
    )
    async with running(runner):
        assert runner.submit(Notice(K.LINK_DOWN, peer="slave", link="eth1", detail="x y")) == 1
        assert runner.submit(Notice(K.PEER_DEAD, peer="slave"), epoch=4) == 2
        await wait_for(lambda: runner.results["ok"] == 3)
    # Hooks run concurrently (two at a time here): find each event's block, not by order.
    blocks = [b for b in out.read_text().split("---") if b.strip()]
    [first] = [b for b in blocks if "GOSSIPHA_EVENT=link_down" in b]
    [dead] = [b for b in blocks if "GOSSIPHA_EVENT=peer_dead" in b]
    assert "GOSSIPHA_EVENT=link_down" in first and "GOSSIPHA_LINK=eth1" in first
    assert "GOSSIPHA_DETAIL=x y" in first and "GOSSIPHA_CLUSTER=c" in first
    assert "GOSSIPHA_NODE=master" in first and "GOSSIPHA_PEER=slave" in first
    assert "GOSSIPHA_GROUP=\n" in first and "GOSSIPHA_REANNOUNCE=0" in first
    assert "GOSSIPHA_EPOCH=4" in dead
    assert (tmp_path / "dead").read_text() == "dead-hook\n"


async def test_hook_timeout_kills_by_pid(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    slow = script(tmp_path, "slow", f"echo $$ > {pidfile}\nsleep 30 &\nwait\n")
    runner = HookRunner([Hook(slow, timeout_s=0.3)], 1, cluster="c", node="n")
    t0 = time.monotonic()
    async with running(runner):
        runner.submit(Notice(K.PEER_WARN, peer="p"))
        await wait_for(lambda: runner.results["timeout"] == 1)
    assert time.monotonic() - t0 < 3
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # the whole process group went, including the backgrounded sleep (zombies aside:
    # reaping the orphan is init's job)
    await wait_for(lambda: not live_in_group(pid), 2.0)


def live_in_group(pgid: int) -> list[int]:
    live = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry.name))
    return live


async def test_hook_concurrency_bound_and_queue_drop(tmp_path: Path) -> None:
    log = tmp_path / "log"
    hook = script(tmp_path, "h", f"echo start >> {log}\nsleep 0.2\necho end >> {log}\n")
    runner = HookRunner([Hook(hook)], 2, cluster="c", node="n", max_queue=3)
    for i in range(5):  # before run(): the queue keeps the newest 3
        runner.submit(Notice(K.LINK_DOWN, peer="p", link=f"l{i}"))
    assert runner.dropped == 2 and runner.queued == 3
    peak = 0
    async with running(runner):

        def done() -> bool:
            nonlocal peak
            peak = max(peak, runner.running)
            return runner.results["ok"] == 3

        await wait_for(done)
    assert peak == 2
    # never more than 2 between a start and its end
    depth = 0
    for line in log.read_text().split():
        depth += 1 if line == "start" else -1
        assert depth <= 2


async def test_hook_failures_and_reannounce(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = script(tmp_path, "bad", "exit 3\n")
    good = script(tmp_path, "good", f"echo $GOSSIPHA_EVENT $GOSSIPHA_REANNOUNCE >> {out}\n")
    runner = HookRunner(
        [Hook(bad), Hook(tmp_path / "missing"), Hook(good)], 4, cluster="c", node="n"
    )
    st = AlertState("n")
    st.apply(Notice(K.PEER_DEAD, peer="p"), 1.0)
    async with running(runner):
        assert runner.reannounce(st.current_notices()) == 3
        await wait_for(lambda: sum(runner.results.values()) == 3)
    assert runner.results == {"ok": 1, "failed": 1, "timeout": 0, "error": 1}
    assert out.read_text() == "peer_dead 1\n"


async def test_hook_submit_never_blocks_without_runner(tmp_path: Path) -> None:
    runner = HookRunner([Hook(tmp_path / "x")], 1, cluster="c", node="n", max_queue=10)
    t0 = time.monotonic()
    for _ in range(10_000):
        runner.submit(Notice(K.PEER_WARN, peer="p"))
    assert time.monotonic() - t0 < 1.0 and runner.queued == 10


# ---------------------------------------------------------------------------- Alertmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_client_retries_with_fake_alertmanager() -> None:
    got: list[list[dict]] = []  # type: ignore[type-arg]
    fail = [2]

    async def post(request: web.Request) -> web.Response:
        if fail[0] > 0:
            fail[0] -= 1
            return web.Response(status=503)
        got.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/api/v2/alerts", post)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    client = AlertmanagerClient(
        f"http://127.0.0.1:{port}/", cluster="c", node="n", resend_s=0.3, min_backoff_s=0.05
    )
    st = AlertState("n")
    task = asyncio.create_task(client.run())
    try:
        client.update(st.apply(Notice(K.PEER_WARN, peer="p"), time.time()))
        await wait_for(lambda: len(got) >= 1)
        assert client.failures == 2 and got[0][0]["labels"]["alertname"] == "GossiphaPeerWarn"
        await wait_for(lambda: len(got) >= 2)  # re-sent while firing
        assert got[1][0]["labels"]["alertname"] == "GossiphaPeerWarn"
        client.update(st.apply(Notice(K.PEER_RECOVERED, peer="p"), time.time()))
        await wait_for(lambda: any("endsAt" in a for batch in got for a in batch))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.cleanup()


def test_client_pending_is_bounded() -> None:
    client = AlertmanagerClient("http://127.0.0.1:9", cluster="c", node="n", max_pending=2)
    st = AlertState("n")
    for i in range(5):
        client.update(st.apply(Notice(K.PEER_DEAD, peer=f"p{i}"), 1.0))
    assert client.pending == 2 and client.dropped == 3


ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@pytest.fixture
def alertmanager_cmd(tmp_path: Path) -> Iterator[tuple[list[str], int]]:
    if ALERTMANAGER is None:
        cannot_run("prometheus-alertmanager not installed")
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    port = free_port()
    (tmp_path / "data").mkdir()
    cmd = [
        ALERTMANAGER,
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    yield cmd, port


async def _ready(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            async with session.get(f"{base}/-/ready") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, "alertmanager did not become ready"
        await asyncio.sleep(0.05)


async def _alerts(session: aiohttp.ClientSession, base: str) -> dict[str, dict]:  # type: ignore[type-arg]
    async with session.get(f"{base}/api/v2/alerts") as r:
        assert r.status == 200
        return {a["labels"]["alertname"]: a for a in await r.json()}


async def test_real_alertmanager(alertmanager_cmd: tuple[list[str], int]) -> None:
    cmd, port = alertmanager_cmd
    base = f"http://127.0.0.1:{port}"
    client = AlertmanagerClient(
        base, cluster="tutorial", node="master", resend_s=60, min_backoff_s=0.1, max_backoff_s=0.3
    )
    st = AlertState("master")
    task = asyncio.create_task(client.run())
    proc: subprocess.Popen[bytes] | None = None
    try:
        # Alertmanager down: the warn is kept and retried
        client.update(st.apply(Notice(K.PEER_WARN, peer="slave"), time.time()))
        await wait_for(lambda: client.failures >= 2)
        assert client.pending == 1 and client.delivered == 0
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        async with aiohttp.ClientSession() as session:
            await _ready(session, base)
            await wait_for(lambda: client.delivered >= 1, 10)
            client.update(st.apply(Notice(K.PEER_DEAD, peer="slave"), time.time()))
            await wait_for(lambda: client.pending == 0 and client.delivered >= 2)
            got = await _alerts(session, base)
            assert set(got) == {"GossiphaPeerWarn", "GossiphaPeerDead"}
            dead = got["GossiphaPeerDead"]
            assert dead["labels"] == {
                "alertname": "GossiphaPeerDead",
                "cluster": "tutorial",
                "node": "master",
                "peer": "slave",
                "severity": "critical",
            }
            assert dead["status"]["state"] in ("active", "unprocessed")
            # recovered: both resolved (endsAt = now), so no longer listed as alerts
            client.update(st.apply(Notice(K.PEER_RECOVERED, peer="slave"), time.time()))
            await wait_for(lambda: client.pending == 0 and client.delivered >= 4)
            await asyncio.sleep(0.05)
            assert await _alerts(session, base) == {}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if proc is not None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
