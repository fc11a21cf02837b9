"""Every file read by one rule (config/text.py): a BOM is dropped, bytes that are not
UTF-8 are an error naming file:line unless inside a comment (ignored there), words split
on ASCII blanks only, and numbers are ASCII digits. ha.cf, haresources, authkeys and
gossipha.toml alike, through the real command."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from gossipha.cli import main
from gossipha.config.errors import EXIT_CONFIG
from tests.conftest import copy_ha_d

BOM = b"\xef\xbb\xbf"
GBK_COMMENT = " # 日志的存放位置".encode("gbk")  # not UTF-8
GBK_NAME = "主机".encode("gbk")

TOML = """\
[cluster]
name = "web"

[auth]
keyfile = "authkeys"

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
    return CliRunner().invoke(main, ["check-config", "--no-host-checks", "--json", *args])


def codes(result: Result) -> list[tuple[str, object, object]]:
    doc = orjson.loads(result.stdout)
    return [(Path(e["file"]).name, e["line"], e["code"]) for e in doc["errors"]]


def ha_d(tmp_path: Path) -> Path:
    return copy_ha_d("master", tmp_path)


def native(tmp_path: Path, toml: bytes | None = None, keys: bytes | None = None) -> Path:
    keyfile = tmp_path / "authkeys"
    keyfile.write_bytes(keys if keys is not None else b"auth 1\n1 sha256 secret\n")
    keyfile.chmod(0o600)
    path = tmp_path / "gossipha.toml"
    path.write_bytes(toml if toml is not None else TOML.encode())
    return path


def add_bytes(path: Path, data: bytes, *, prefix: bool = False) -> None:
    old = path.read_bytes()
    path.write_bytes(data + old if prefix else old + data)


# ---------------------------------------------------------------- byte-order mark


@pytest.mark.parametrize("name", ["ha.cf", "haresources", "authkeys"])
def test_a_bom_is_dropped_in_every_heartbeat_file(tmp_path: Path, name: str) -> None:
    directory = ha_d(tmp_path)
    add_bytes(directory / name, BOM, prefix=True)
    result = check(str(directory), "--node-name", "masternginx")
    assert result.exit_code == 0, result.output


def test_a_bom_is_dropped_in_toml_and_its_key_file(tmp_path: Path) -> None:
    path = native(tmp_path, BOM + TOML.encode(), BOM + b"auth 1\n1 sha256 secret\n")
    result = check(str(path), "--node-name", "a")
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- bytes that are not UTF-8


@pytest.mark.parametrize("name", ["ha.cf", "haresources", "authkeys"])
def test_gbk_in_a_comment_is_ignored_in_every_heartbeat_file(tmp_path: Path, name: str) -> None:
    directory = ha_d(tmp_path)
    add_bytes(directory / name, b"#" + GBK_COMMENT + b"\n")  # a comment line
    text = (directory / name).read_bytes().replace(b"\n", GBK_COMMENT + b"\n", 1)
    (directory / name).write_bytes(text)  # and a comment after the first line's content
    result = check(str(directory), "--node-name", "masternginx")
    assert result.exit_code == 0, result.output


def test_gbk_in_a_comment_is_ignored_in_toml_and_its_key_file(tmp_path: Path) -> None:
    toml = TOML.encode().replace(b'name = "web"', b'name = "web"' + GBK_COMMENT)
    path = native(tmp_path, toml, b"auth 1" + GBK_COMMENT + b"\n1 sha256 secret\n")
    result = check(str(path), "--node-name", "a")
    assert result.exit_code == 0, result.output


def test_gbk_in_a_node_name_is_an_error_with_its_line(tmp_path: Path) -> None:
    directory = ha_d(tmp_path)
    hacf = directory / "ha.cf"
    add_bytes(hacf, b"node " + GBK_NAME + b"\n")
    line = hacf.read_bytes().count(b"\n")
    result = check(str(directory), "--node-name", "masternginx")
    assert result.exit_code == EXIT_CONFIG
    assert codes(result) == [("ha.cf", line, "encoding")]
    assert f"{hacf}:{line}: byte 0xD6 at column 6 is not UTF-8" in result.stderr
    # and migrate, which read it as U+FFFD, now writes nothing
    migrated = CliRunner().invoke(main, ["migrate", str(directory), "--node-name", "masternginx"])
    assert migrated.exit_code == EXIT_CONFIG
    assert migrated.stdout == ""
    assert "\ufffd" not in migrated.output


def test_gbk_outside_comments_is_an_error_in_every_format(tmp_path: Path) -> None:
    directory = ha_d(tmp_path / "hb")
    add_bytes(directory / "haresources", b"masternginx " + GBK_NAME + b"\n")
    keys = (directory / "authkeys").read_bytes().splitlines()
    (directory / "authkeys").write_bytes(b"\n".join([*keys, b"9 sha256 " + GBK_NAME, b""]))
    result = check(str(directory), "--node-name", "masternginx")
    assert result.exit_code == EXIT_CONFIG
    found = codes(result)
    assert ("haresources", 2, "encoding") in found
    assert ("authkeys", len(keys) + 1, "encoding") in found

    toml = TOML.encode().replace(b'"web"', b'"' + GBK_NAME + b'"')
    path = native(tmp_path, toml)
    result = check(str(path), "--node-name", "a")
    assert result.exit_code == EXIT_CONFIG
    assert codes(result) == [("gossipha.toml", 2, "encoding")]
    assert f"{path}:2: byte 0xD6 at column 9 is not UTF-8" in result.stderr


# ---------------------------------------------------------------- words and digits


def test_ha_cf_splits_on_ascii_blanks_only(tmp_path: Path) -> None:
    directory = ha_d(tmp_path)
    hacf = directory / "ha.cf"
    add_bytes(hacf, "keepalive\u30002\n".encode())  # an ideographic space
    line = hacf.read_bytes().count(b"\n")
    result = check(str(directory), "--node-name", "masternginx")
    assert result.exit_code == EXIT_CONFIG
    assert codes(result) == [("ha.cf", line, "unknown-directive")]
    # repr() shows the invisible blank as \u3000, so the user can see what is wrong
    assert "unknown directive 'keepalive\\u30002'" in result.stderr


@pytest.mark.parametrize(
    ("name", "line", "code"),
    [
        ("ha.cf", "deadtime ３０", "bad-duration"),
        ("ha.cf", "udpport ６９４", "bad-number"),
        ("haresources", "masternginx 192.0.2.7/２４", "bad-number"),
        ("authkeys", "２ sha256 secret", "syntax"),
    ],
)
def test_full_width_digits_are_refused_with_their_line(
    tmp_path: Path, name: str, line: str, code: str
) -> None:
    directory = ha_d(tmp_path)
    add_bytes(directory / name, (line + "\n").encode())
    number = (directory / name).read_bytes().count(b"\n")
    result = check(str(directory), "--node-name", "masternginx")
    assert result.exit_code == EXIT_CONFIG
    assert codes(result) == [(name, number, code)]
