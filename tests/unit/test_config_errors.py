"""check-config reports every error of every file in one run, as `keepalived -t` does:
each as file:line: message on stderr and, with --json, as {file, line, code, message}."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from gossipha.cli import main
from gossipha.config.errors import CODES, EXIT_CONFIG
from tests.conftest import copy_ha_d

MINIMAL_TOML = """\
[cluster]
name = "web"

[nodes.a]
addresses = { hb = "10.0.0.1" }

[nodes.b]
addresses = { hb = "10.0.0.2" }

[[link]]
name = "hb"
interface = "lo"

[[group]]
name = "www"
resources = [{ vip = "192.0.2.10/24" }]
"""


def check(*args: str) -> Result:
    return CliRunner().invoke(main, ["check-config", "--no-host-checks", *args])


def errors_of(result: Result) -> list[dict[str, object]]:
    doc = orjson.loads(result.stdout)
    assert isinstance(doc, dict)
    errors = doc["errors"]
    assert isinstance(errors, list)
    return errors


def test_three_errors_of_ha_cf_in_one_run(tmp_path: Path) -> None:
    ha_d = copy_ha_d("master", tmp_path)
    hacf = ha_d / "ha.cf"
    lines = hacf.read_text().splitlines()
    lines[2] = "keepalive 2x"  # line 3
    lines[4] = "Deadtime 30"  # line 5
    lines.append("udpport ６９４")  # a full-width port: not ASCII digits
    hacf.write_text("\n".join(lines) + "\n")
    last = len(lines)

    result = check(str(ha_d), "--node-name", "masternginx")
    assert result.exit_code == EXIT_CONFIG
    stderr = result.stderr.splitlines()
    assert f"gossipha: error: {hacf}:3: keepalive: '2x' is not a duration" in stderr[0]
    assert f"gossipha: error: {hacf}:5: unknown directive 'Deadtime'" in stderr[1]
    assert "write 'deadtime'" in stderr[1]
    assert f"gossipha: error: {hacf}:{last}: udpport: found '６９４'" in stderr[2]
    assert len([line for line in stderr if "error:" in line]) == 3

    result = check(str(ha_d), "--node-name", "masternginx", "--json")
    assert result.exit_code == EXIT_CONFIG
    errors = errors_of(result)
    assert [(e["file"], e["line"], e["code"]) for e in errors] == [
        (str(hacf), 3, "bad-duration"),
        (str(hacf), 5, "unknown-directive"),
        (str(hacf), last, "bad-number"),
    ]
    assert all(isinstance(e["message"], str) for e in errors)
    doc = orjson.loads(result.stdout)
    assert doc["host_checks_ran"] is False and doc["host_checks"] == []


def test_errors_of_all_three_heartbeat_files_together(tmp_path: Path) -> None:
    ha_d = copy_ha_d("master", tmp_path)
    with (ha_d / "ha.cf").open("a") as out:
        out.write("stonith baytech /etc/ha.d/conf/stonith.baytech\n")
    (ha_d / "haresources").write_text("masternginx 192.168.171.300/24/eth0:0 nginx\n")
    (ha_d / "authkeys").write_text("auth 1\n1 sha256\n2 rot13 secret\n")
    result = check(str(ha_d), "--node-name", "masternginx", "--json")
    assert result.exit_code == EXIT_CONFIG
    found = [(Path(str(e["file"])).name, e["line"], e["code"]) for e in errors_of(result)]
    assert ("ha.cf", 15, "unsupported") in found  # the tutorial's ha.cf has 14 lines
    assert ("haresources", 1, "bad-address") in found
    assert ("authkeys", 2, "missing") in found  # sha256 needs a secret
    assert ("authkeys", 3, "bad-value") in found  # rot13 is no method
    assert len(found) == 4, found


def test_every_code_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for code in CODES:
        assert f"`{code}`" in docs, code


def test_toml_errors_of_several_tables_in_one_run(tmp_path: Path) -> None:
    keys = tmp_path / "authkeys"
    keys.write_text("auth 1\n1 sha256 k\n")
    keys.chmod(0o600)
    path = tmp_path / "gossipha.toml"
    text = MINIMAL_TOML.replace('name = "web"', 'name = "web"\nfailback = 3')  # line 3
    text += '\n[timings]\nkeepalive = "fast"\nphi_window = 0\nwarntme = "1s"\n'
    path.write_text(text)
    lines = text.splitlines()
    result = check(str(path), "--node-name", "a", "--json")
    assert result.exit_code == EXIT_CONFIG
    found = [(e["line"], e["code"]) for e in errors_of(result)]
    assert found == [
        (3, "unknown-directive"),
        (lines.index('keepalive = "fast"') + 1, "bad-duration"),
        (lines.index("phi_window = 0") + 1, "bad-number"),
        (lines.index('warntme = "1s"') + 1, "unknown-directive"),
    ]
    stderr = result.stderr
    assert f"{path}:3: cluster.failback: unknown key 'failback'" in stderr


def test_rules_of_different_kinds_are_all_reported(tmp_path: Path) -> None:
    ha_d = copy_ha_d("master", tmp_path)
    hacf = ha_d / "ha.cf"
    hacf.write_text(hacf.read_text().replace("keepalive 2", "keepalive 40"))
    (ha_d / "haresources").write_text(
        "masternginx 192.168.171.100/24/eth0:0\nslavenginx 192.168.171.100/24/eth0:1\n"
    )
    result = check(str(ha_d), "--node-name", "masternginx", "--json")
    assert result.exit_code == EXIT_CONFIG
    errors = errors_of(result)
    assert {e["code"] for e in errors} == {"rule"}
    files = {(Path(str(e["file"])).name, e["line"]) for e in errors}
    assert ("haresources", 2) in files  # the VIP used twice
    assert any(name == "ha.cf" for name, _ in files)  # deadtime is not above keepalive
    assert "already used by group" in result.stderr and "keepalive" in result.stderr


def test_a_good_file_has_an_empty_error_list(tmp_path: Path) -> None:
    ha_d = copy_ha_d("master", tmp_path)
    result = check(str(ha_d), "--node-name", "masternginx", "--json")
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert doc["errors"] == []
    assert doc["cluster_name"] == "heartbeat"  # the configuration's fields are still there


def test_check_config_never_writes(tmp_path: Path) -> None:
    ha_d = copy_ha_d("master", tmp_path)
    with (ha_d / "ha.cf").open("ab") as out:
        out.write(b"node \xc4\xe3\xba\xc3\nbogus 1\n")  # GBK bytes, then a typo
    before = {
        p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()
    }
    for args in ([], ["--json"]):
        result = check(str(ha_d), "--node-name", "masternginx", *args)
        assert result.exit_code == EXIT_CONFIG
    after = {
        p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()
    }
    assert after == before


def test_the_agent_reads_the_same_way_and_stops(tmp_path: Path) -> None:
    ha_d = copy_ha_d("master", tmp_path)
    with (ha_d / "ha.cf").open("a") as out:
        out.write("keepalive 2x\nbogus 1\n")
    result = CliRunner().invoke(
        main, ["agent", "--config", str(ha_d), "--node-name", "masternginx"]
    )
    assert result.exit_code == EXIT_CONFIG
    assert "keepalive: '2x' is not a duration" in result.stderr
    assert "unknown directive 'bogus'" in result.stderr


def test_codes_are_a_small_stable_set() -> None:
    assert CODES == (
        "not-found",
        "unreadable",
        "encoding",
        "syntax",
        "unknown-directive",
        "missing",
        "duplicate",
        "bad-number",
        "bad-duration",
        "bad-address",
        "bad-value",
        "unsupported",
        "insecure",
        "rule",
    )


def test_status_still_refuses_an_unknown_observe_key(tmp_path: Path) -> None:
    """Unknown TOML keys are recorded rather than raised; `status` reads only [observe]
    and must still stop on them, not ignore them."""
    path = tmp_path / "gossipha.toml"
    path.write_text(MINIMAL_TOML + '\n[observe]\nlisten_address = "0.0.0.0"\n')
    result = CliRunner().invoke(main, ["status", "--config", str(path)])
    assert result.exit_code == EXIT_CONFIG
    line = MINIMAL_TOML.count("\n") + 3
    assert f"{path}:{line}: observe.listen_address: unknown key 'listen_address'" in result.stderr


async def test_a_reload_logs_each_error_on_its_own_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from gossipha.runtime.reload import load_for_reload

    ha_d = copy_ha_d("master", tmp_path)
    with (ha_d / "ha.cf").open("a") as out:
        out.write("keepalive 2x\nbogus 1\n")
    with caplog.at_level(logging.ERROR, logger="gossipha.agent"):
        got = await load_for_reload(ha_d, "masternginx", allow_unauthenticated=False, witness=False)
    assert got is None
    failed = [r.getMessage() for r in caplog.records if "reload failed" in r.getMessage()]
    assert len(failed) == 2 and all("\n" not in line for line in failed)
    assert "ha.cf:15: keepalive" in failed[0] and "ha.cf:16: unknown directive" in failed[1]
