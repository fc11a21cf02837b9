"""HTTP api (/metrics, /status, /healthz), admin socket, and the CLI commands on both."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from gossipha.cli import main
from gossipha.config.errors import EXIT_CONFIG
from gossipha.core.types import AdminKind
from gossipha.observe.admin import AdminError, AdminServer, AgentNotRunning, send_admin
from gossipha.observe.api import ApiServer, make_app
from gossipha.observe.metrics import Metrics
from gossipha.observe.status import ClusterStatus, to_json
from tests.unit.test_observe_status import sample_status


async def test_endpoints() -> None:
    reg = CollectorRegistry()
    metrics = Metrics(reg, "tutorial", "master")
    current: list[ClusterStatus | None] = [None]
    async with ApiServer(make_app(lambda: current[0], reg), "127.0.0.1", 0) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/status") as r:
                assert r.status == 503
            async with s.get(f"{base}/healthz") as r:
                assert r.status == 503
            current[0] = sample_status()
            metrics.update_from(current[0])
            async with s.get(f"{base}/status") as r:
                assert r.status == 200 and r.content_type == "application/json"
                doc = orjson.loads(await r.read())
                assert doc["node"] == "master" and doc["groups"][0]["holder"] == "master"
            async with s.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with s.get(f"{base}/metrics") as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
                assert 'gossipha_peer_phi{peer="slave"} 0.4' in text
                assert "process_cpu_seconds_total" in text


async def test_api_cleanup_is_safe_twice() -> None:
    server = ApiServer(make_app(lambda: None, CollectorRegistry()), "127.0.0.1", 0)
    await server.cleanup()
    await server.setup()
    with pytest.raises(RuntimeError):
        await server.setup()
    await server.cleanup()
    await server.cleanup()


async def test_admin_roundtrip_and_refusal(tmp_path: Path) -> None:
    seen: list[AdminKind] = []

    async def handler(kind: AdminKind) -> str:
        seen.append(kind)
        if kind is AdminKind.TAKEOVER:
            raise RuntimeError("no quorum")
        return f"{kind.value} applied"

    path = tmp_path / "run" / "admin.sock"
    async with AdminServer(path, handler):
        assert (path.stat().st_mode & 0o777) == 0o600
        reply = await send_admin(path, AdminKind.STANDBY)
        assert reply.ok and reply.detail == "standby applied"
        reply = await send_admin(path, AdminKind.TAKEOVER)
        assert not reply.ok and "no quorum" in reply.detail
        # a second agent on the same socket is refused
        with pytest.raises(AdminError):
            await AdminServer(path, handler).setup()
    assert seen == [AdminKind.STANDBY, AdminKind.TAKEOVER]
    assert not path.exists()

    async with AdminServer(path, handler, allowed_uids={os.getuid() + 4242}):
        reply = await send_admin(path, AdminKind.MAINTENANCE_ON)
        assert not reply.ok and "refused" in reply.detail
    assert seen == [AdminKind.STANDBY, AdminKind.TAKEOVER]


async def test_admin_garbage_request(tmp_path: Path) -> None:
    async def handler(kind: AdminKind) -> str:
        raise AssertionError("not reached")

    path = tmp_path / "a.sock"
    async with AdminServer(path, handler):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"command": "reboot"}\n')
        line = await reader.readline()
        writer.close()
        assert orjson.loads(line) == {"ok": False, "detail": "bad request"}


async def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "a.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # file left behind, nobody listening

    async def handler(kind: AdminKind) -> str:
        return "ok"

    async with AdminServer(path, handler):
        assert (await send_admin(path, AdminKind.MAINTENANCE_OFF)).ok


async def test_agent_not_running(tmp_path: Path) -> None:
    with pytest.raises(AgentNotRunning, match="is it running"):
        await send_admin(tmp_path / "none.sock", AdminKind.STANDBY)


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def agent_servers(tmp_path: Path) -> Iterator[tuple[str, Path, list[AdminKind]]]:
    """An api and admin socket served from a loop in a thread (the CLI runs its own loop)."""
    loop = asyncio.new_event_loop()
    seen: list[AdminKind] = []

    async def handler(kind: AdminKind) -> str:
        seen.append(kind)
        return f"{kind.value}: done"

    reg = CollectorRegistry()
    api = ApiServer(make_app(sample_status, reg), "127.0.0.1", 0)
    admin = AdminServer(tmp_path / "admin.sock", handler)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(api.setup(), loop).result(5)
    asyncio.run_coroutine_threadsafe(admin.setup(), loop).result(5)
    try:
        yield f"http://127.0.0.1:{api.port}", admin.path, seen
    finally:
        asyncio.run_coroutine_threadsafe(api.cleanup(), loop).result(5)
        asyncio.run_coroutine_threadsafe(admin.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_cli_status_and_admin(agent_servers: tuple[str, Path, list[AdminKind]]) -> None:
    url, sock, seen = agent_servers
    runner = CliRunner()
    res = runner.invoke(main, ["status", "--url", url])
    assert res.exit_code == 0, res.output
    assert "Cluster tutorial" in res.output and "holder master" in res.output
    res = runner.invoke(main, ["status", "--json", "--url", url])
    assert res.exit_code == 0 and orjson.loads(res.output)["schema"] == 1
    for args in (["standby"], ["takeover"], ["maintenance", "on"], ["maintenance", "off"]):
        res = runner.invoke(main, [*args, "--socket", str(sock)])
        assert res.exit_code == 0, res.output
    assert seen == [
        AdminKind.STANDBY,
        AdminKind.TAKEOVER,
        AdminKind.MAINTENANCE_ON,
        AdminKind.MAINTENANCE_OFF,
    ]


def test_cli_agent_not_running(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    runner = CliRunner()
    res = runner.invoke(main, ["status", "--url", f"http://127.0.0.1:{port}"])
    assert res.exit_code == 1 and "is it running" in res.output
    res = runner.invoke(main, ["standby", "--socket", str(tmp_path / "x.sock")])
    assert res.exit_code == 1 and "no gossipha agent" in res.output


# ------------------------------------------------ status finds the agent from its config


def _native_with_listen(tmp_path: Path, listen: str) -> Path:
    from tests.conftest import REPO

    text = (REPO / "docs" / "examples" / "native" / "gossipha.toml").read_text()
    assert 'listen = "127.0.0.1:9694"' in text
    toml = tmp_path / "gossipha.toml"
    toml.write_text(text.replace('listen = "127.0.0.1:9694"', f'listen = "{listen}"'))
    return toml


def test_cli_status_finds_the_agent_from_its_config(
    tmp_path: Path, agent_servers: tuple[str, Path, list[AdminKind]]
) -> None:
    url, _sock, _seen = agent_servers
    port = url.rsplit(":", 1)[1]
    toml = _native_with_listen(tmp_path, f"127.0.0.1:{port}")
    res = CliRunner().invoke(main, ["status", "--config", str(toml)])
    assert res.exit_code == 0, res.output
    assert "Cluster tutorial" in res.output
    # A wildcard listen address is reached on loopback.
    toml = _native_with_listen(tmp_path, f"0.0.0.0:{port}")
    res = CliRunner().invoke(main, ["status", "--json", "--config", str(toml)])
    assert res.exit_code == 0 and orjson.loads(res.output)["schema"] == 1


def _asked_url(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def fake(url: str, timeout_s: float = 0.0) -> dict[str, object]:
        asked.append(url)
        doc: dict[str, object] = orjson.loads(orjson.dumps(to_json(sample_status())))
        return doc

    monkeypatch.setattr("gossipha.observe.commands.fetch_status", fake)
    return asked


def test_cli_status_of_an_ha_d_is_the_default_address(
    master_ha_d: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _asked_url(monkeypatch)
    (master_ha_d / "authkeys").chmod(0o644)  # not read: status needs no keys
    res = CliRunner().invoke(main, ["status", "--config", str(master_ha_d)])
    assert res.exit_code == 0, res.output
    assert asked == ["http://127.0.0.1:9694"]


def test_cli_status_reads_the_agent_s_default_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gossipha.config import load

    # The agent's rule (config/load.py resolve_path): nothing found names what was looked for.
    search = (tmp_path / "gossipha.toml", tmp_path / "ha.d")
    monkeypatch.setattr(load, "DEFAULT_SEARCH", search)
    res = CliRunner().invoke(main, ["status"])
    assert res.exit_code == EXIT_CONFIG
    assert f"no configuration found (looked for {search[0]}, {search[1]})" in res.stderr
    assert "--config" in res.stderr and "--url" in res.stderr


def test_cli_status_names_the_config_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "ha.d").mkdir()
    res = CliRunner().invoke(main, ["status", "--config", str(tmp_path / "ha.d")])
    assert res.exit_code == EXIT_CONFIG
    assert f"{tmp_path / 'ha.d' / 'ha.cf'}: file not found" in res.stderr
    toml = _native_with_listen(tmp_path, "127.0.0.1:99999")
    res = CliRunner().invoke(main, ["status", "--config", str(toml)])
    assert res.exit_code == EXIT_CONFIG
    assert f"{toml}:84: observe.listen" in res.stderr


def test_cli_status_takes_url_or_config_not_both(tmp_path: Path) -> None:
    args = ["status", "--url", "http://127.0.0.1:9", "--config", str(tmp_path)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "not both" in res.output


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9694"),
        ("0.0.0.0", "http://127.0.0.1:9694"),
        ("::", "http://[::1]:9694"),
        ("fd00::5", "http://[fd00::5]:9694"),
        ("node1.example", "http://node1.example:9694"),
    ],
)
def test_agent_url_from_a_listen_address(host: str, url: str) -> None:
    from gossipha.observe.commands import agent_url

    assert agent_url(host, 9694) == url
