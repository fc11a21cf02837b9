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
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from gossipha.config.errors import Collector, ConfigError, ConfigWarning
from gossipha.config.model import Auth, AuthKey, AuthMethod
from gossipha.config.numbers import is_digits
from gossipha.config.text import ConfigText, hash_at_word, read, words

_METHODS = {m.value: m for m in AuthMethod}
_AUTH_LINE = re.compile(r"^auth[ \t]*([^ \t]*)[ \t]*$")
_COMMENT = re.compile(r"(^|[ \t\f\v])#")


def _strip_comment(line: str) -> str:
    """Drop `#...` at the start or after a blank; a `#` inside a secret is kept."""
    match = _COMMENT.search(line)
    return (line[: match.start()] if match else line).strip(" \t\r\f\v")


def check_mode(path: Path) -> None:
    """Refuse a key file that group or others can read or write (as Heartbeat does)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            path,
            None,
            f"mode {mode:04o} lets group/others read the keys; expected 600 "
            f"(run: chmod 600 {path})",
            "insecure",
        )


def read_authkeys_text(path: Path) -> ConfigText:
    """authkeys' lines by the shared rule (config/text.py); `#` at a word's start."""
    return read(path, "an authkeys file", hash_at_word)


@dataclass(slots=True)
class _Keys:
    """What the lines have said so far."""

    path: Path
    active: int | None = None
    active_line: int = 0
    keys: dict[int, AuthKey] = field(default_factory=dict)
    # Written, even on a line with an error: no second error about a missing one.
    auth_written: bool = False

    def fail(self, line: int | None, message: str, code: str = "bad-value") -> NoReturn:
        raise ConfigError(self.path, line, message, code)

    def line(self, lineno: int, line: str) -> None:
        """One non-blank line: `auth N` or `N method [secret]`."""
        auth = _AUTH_LINE.match(line)
        if auth:
            self.auth_written = True
            if self.active is not None:
                self.fail(
                    lineno, f"second `auth` line; the first is line {self.active_line}", "duplicate"
                )
            if not is_digits(auth.group(1)):
                self.fail(
                    lineno,
                    f"`auth {auth.group(1)}`: expected `auth N` with a key number",
                    "bad-number",
                )
            self.active, self.active_line = int(auth.group(1)), lineno
            return
        found = words(line)
        if not is_digits(found[0]):
            self.fail(
                lineno, f"found {found[0]!r}; expected `auth N` or `N method secret`", "syntax"
            )
        key_id = int(found[0])
        if not 1 <= key_id <= 255:
            self.fail(lineno, f"key number {key_id}: expected 1 to 255", "bad-number")
        if key_id in self.keys:
            self.fail(lineno, f"key {key_id} is defined twice", "duplicate")
        if len(found) < 2 or found[1].lower() not in _METHODS:
            method = found[1] if len(found) > 1 else "nothing"
            self.fail(
                lineno,
                f"key {key_id}: method {method!r}; expected one of crc, md5, sha1, sha256, sha512",
            )
        kind = _METHODS[found[1].lower()]
        if kind is AuthMethod.CRC:
            if len(found) > 2:
                self.fail(lineno, f"key {key_id}: crc takes no secret", "syntax")
            secret = b""
        else:
            if len(found) < 3:
                self.fail(lineno, f"key {key_id}: {kind.value} needs a secret", "missing")
            if len(found) > 3:
                self.fail(
                    lineno, f"key {key_id}: unexpected {found[3]!r} after the secret", "syntax"
                )
            secret = found[2].encode("utf-8")
        self.keys[key_id] = AuthKey(key_id, kind, secret)


def parse_authkeys(
    path: Path, *, allow_unauthenticated: bool = False, check_permissions: bool = True
) -> tuple[Auth, list[ConfigWarning]]:
    """Read and check an authkeys file; ConfigErrors lists every bad line (file:line, code)."""
    text = read_authkeys_text(path)
    errors = Collector()
    for error in text.errors:
        errors.add(error)
    if check_permissions:
        with errors.attempt():
            check_mode(path)
    state = _Keys(path)
    for lineno, raw in enumerate(text.lines, start=1):
        line = _strip_comment(raw)
        if line:
            with errors.attempt():
                state.line(lineno, line)
    with errors.attempt():
        if state.active is None:
            if not state.auth_written:
                state.fail(
                    None, "no `auth N` line; expected one naming the key to sign with", "missing"
                )
        elif state.active not in state.keys and not errors.errors:
            # (A line in error may be the key meant: no second error about it.)
            defined = ", ".join(str(k) for k in sorted(state.keys)) or "none"
            state.fail(
                state.active_line,
                f"`auth {state.active}` names an undefined key (defined: {defined})",
                "missing",
            )
    errors.errors.sort(key=lambda e: e.line or 0)
    errors.raise_if_any()
    assert state.active is not None
    result = Auth(
        path=path,
        active=state.active,
        keys=tuple(state.keys[k] for k in sorted(state.keys)),
        allow_unauthenticated=allow_unauthenticated,
    )
    return result, []


def active_line(path: Path) -> int | None:
    """The line of `auth N` in `path`, for error messages about the chosen key."""
    try:
        lines = read_authkeys_text(path).lines
    except ConfigError:
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
