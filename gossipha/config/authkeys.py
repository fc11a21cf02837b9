"""Heartbeat's authkeys file: `auth N` picks the signing key, `N method secret` lines define keys.

Both config sources read keys from such a file (native TOML names it in `[auth] keyfile`),
so secrets never sit in a world-readable config. Like Heartbeat, a file that group or
others may read is refused.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from gossipha.config.errors import ConfigError, ConfigWarning
from gossipha.config.model import Auth, AuthKey, AuthMethod
from gossipha.config.numbers import is_digits

_METHODS = {m.value: m for m in AuthMethod}
_AUTH_LINE = re.compile(r"^auth\s*(\S*)\s*$")


def _strip_comment(line: str) -> str:
    """Drop `#...` at the start or after whitespace; a `#` inside a secret is kept."""
    match = re.search(r"(^|\s)#", line)
    return (line[: match.start()] if match else line).strip()


def check_mode(path: Path) -> None:
    """Refuse a key file that group or others can read or write (as Heartbeat does)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            path,
            None,
            f"mode {mode:04o} lets group/others read the keys; expected 600 "
            f"(run: chmod 600 {path})",
        )


def parse_authkeys(
    path: Path, *, allow_unauthenticated: bool = False, check_permissions: bool = True
) -> tuple[Auth, list[ConfigWarning]]:
    """Read and check an authkeys file; ConfigError names the file and line on bad input."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found; expected an authkeys file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    if check_permissions:
        check_mode(path)
    warnings: list[ConfigWarning] = []
    active: int | None = None
    active_line = 0
    keys: dict[int, AuthKey] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not line:
            continue
        auth = _AUTH_LINE.match(line)
        if auth:
            if active is not None:
                raise ConfigError(
                    path, lineno, f"second `auth` line; the first is line {active_line}"
                )
            if not is_digits(auth.group(1)):
                raise ConfigError(
                    path, lineno, f"`auth {auth.group(1)}`: expected `auth N` with a key number"
                )
            active, active_line = int(auth.group(1)), lineno
            continue
        words = line.split()
        if not is_digits(words[0]):
            raise ConfigError(
                path, lineno, f"found {words[0]!r}; expected `auth N` or `N method secret`"
            )
        key_id = int(words[0])
        if not 1 <= key_id <= 255:
            raise ConfigError(path, lineno, f"key number {key_id}: expected 1 to 255")
        if key_id in keys:
            raise ConfigError(path, lineno, f"key {key_id} is defined twice")
        if len(words) < 2 or words[1].lower() not in _METHODS:
            found = words[1] if len(words) > 1 else "nothing"
            raise ConfigError(
                path,
                lineno,
                f"key {key_id}: method {found!r}; expected one of crc, md5, sha1, sha256, sha512",
            )
        method = _METHODS[words[1].lower()]
        if method is AuthMethod.CRC:
            if len(words) > 2:
                raise ConfigError(path, lineno, f"key {key_id}: crc takes no secret")
            secret = b""
        else:
            if len(words) < 3:
                raise ConfigError(path, lineno, f"key {key_id}: {method.value} needs a secret")
            if len(words) > 3:
                raise ConfigError(
                    path, lineno, f"key {key_id}: unexpected {words[3]!r} after the secret"
                )
            secret = words[2].encode("utf-8")
        keys[key_id] = AuthKey(key_id, method, secret)
    if active is None:
        raise ConfigError(path, None, "no `auth N` line; expected one naming the key to sign with")
    if active not in keys:
        defined = ", ".join(str(k) for k in sorted(keys)) or "none"
        raise ConfigError(
            path, active_line, f"`auth {active}` names an undefined key (defined: {defined})"
        )
    result = Auth(
        path=path,
        active=active,
        keys=tuple(keys[k] for k in sorted(keys)),
        allow_unauthenticated=allow_unauthenticated,
    )
    return result, warnings


def active_line(path: Path) -> int | None:
    """The line of `auth N` in `path`, for error messages about the chosen key."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for lineno, raw in enumerate(lines, start=1):
        if _AUTH_LINE.match(_strip_comment(raw)):
            return lineno
    return None


def new_keyfile_text() -> str:
    """A fresh sha256 authkeys as text (for a pipe: `gossipha keygen -o -`)."""
    secret = secrets.token_hex(32)
    return (
        "# made by gossipha keygen; keep it mode 600, same file on every node\n"
        f"auth 1\n1 sha256 {secret}\n"
    )


def write_new_keyfile(path: Path) -> None:
    """Create a fresh sha256 authkeys (mode 600 from the first byte; never overwrite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(new_keyfile_text())
