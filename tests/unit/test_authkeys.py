"""authkeys as Heartbeat users write it: `auth N`, keys, modes, and every error with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossipha.config.authkeys import parse_authkeys
from gossipha.config.errors import ConfigError
from gossipha.config.model import AuthMethod


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "authkeys"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_tutorial_file_with_trailing_comments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "auth 3                    #默认都是有 # 号注释\n#1 crc\n#2 sha1 HI!\n"
        "3 md5 Hello!                            #去掉#号,\n",
    )
    auth, warnings = parse_authkeys(path)
    assert auth.active == 3
    assert auth.active_key.method is AuthMethod.MD5
    assert auth.active_key.secret == b"Hello!"
    assert warnings == []


@pytest.mark.parametrize(
    ("method", "secret"),
    [("sha1", "HI!"), ("md5", "x"), ("sha256", "a" * 64), ("sha512", "k#ey"), ("SHA256", "s")],
)
def test_methods(tmp_path: Path, method: str, secret: str) -> None:
    auth, _ = parse_authkeys(write(tmp_path, f"auth 2\n2 {method} {secret}\n"))
    assert auth.active_key.method.value == method.lower()
    assert auth.active_key.secret == secret.encode()


def test_several_keys_all_kept_for_rotation(tmp_path: Path) -> None:
    auth, _ = parse_authkeys(write(tmp_path, "auth 2\n1 sha256 old\n2 sha256 new\n"))
    assert [k.key_id for k in auth.keys] == [1, 2]
    assert auth.active_key.secret == b"new"


def test_glued_auth_line_as_the_tutorial_prints_it(tmp_path: Path) -> None:
    auth, _ = parse_authkeys(write(tmp_path, "auth3\n3 md5 Hello!\n"))
    assert auth.active == 3


def test_crc_parses_and_carries_the_opt_in(tmp_path: Path) -> None:
    auth, _ = parse_authkeys(write(tmp_path, "auth 1\n1 crc\n"), allow_unauthenticated=True)
    assert auth.active_key.method is AuthMethod.CRC
    assert auth.allow_unauthenticated


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, "auth 1\n1 sha256 k\n", mode)
    with pytest.raises(ConfigError) as err:
        parse_authkeys(path)
    assert str(path) in str(err.value)
    assert f"{mode:04o}" in str(err.value) and "600" in str(err.value)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("auth 9\n1 sha256 k\n", 1, ["auth 9", "undefined", "defined: 1"]),
        ("auth x\n", 1, ["auth N"]),
        # Unicode digits: int() reads "２" as 2 and raises on "²"; Heartbeat reads neither.
        ("auth ２\n２ sha256 k\n", 1, ["auth N"]),
        ("auth ²\n", 1, ["auth N"]),
        ("auth 1\n1 sha256 k\n² md5 k\n", 3, ["'²'", "expected"]),
        ("auth 1\nauth 1\n1 sha256 k\n", 2, ["second", "line 1"]),
        ("auth 1\n1 rot13 k\n", 2, ["rot13", "sha256"]),
        ("auth 1\n1 sha256\n", 2, ["needs a secret"]),
        ("auth 1\n1 crc secret\n", 2, ["crc takes no secret"]),
        ("auth 1\n1 sha256 a b\n", 2, ["'b'"]),
        ("auth 1\n1 sha256 k\n1 md5 k\n", 3, ["defined twice"]),
        ("auth 1\nkey 1 sha256\n", 2, ["'key'", "expected"]),
        ("auth 1\n0 sha256 k\n", 2, ["1 to 255"]),
        ("# nothing\n1 sha256 k\n", None, ["no `auth N`"]),
    ],
)
def test_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int | None, words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        parse_authkeys(path)
    assert err.value.path == path
    assert err.value.line == line
    for word in words:
        assert word in err.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        parse_authkeys(tmp_path / "authkeys")
