"""Configuration file bytes -> lines of text, by one rule for every format.

ha.cf, haresources, authkeys and gossipha.toml are all read here, so they agree on:
- a UTF-8 byte-order mark at the start of the file is dropped (Windows editors add one);
- a line ends at `\\n` only (a `\\r` before it is dropped): a form feed or U+2028 inside
  a line does not start a new one, so line numbers match what `sed -n Np` shows;
- bytes that are not UTF-8 (a GBK node name, say) are an `encoding` error naming the file
  and line, except inside a comment, where they are ignored: the comment is emptied;
- words (`words`) are split on ASCII blanks only: a no-break space (U+00A0) or an
  ideographic space (U+3000) is part of a word, as it is for Heartbeat's C parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gossipha.config.errors import ConfigError

# Where a line's comment starts: the byte offset of its `#`, or -1 for none. `#` is one
# byte in UTF-8 and never the second byte of a GBK, Big5 or Shift JIS character, so the
# search is safe on bytes that are not UTF-8.
CommentStart = Callable[[bytes], int]

_BOM: Final = b"\xef\xbb\xbf"
_BLANKS: Final = re.compile(r"[ \t\n\r\f\v]+")
_HASH_AT_WORD: Final = re.compile(rb"(?:^|[ \t\f\v])#")


def hash_anywhere(line: bytes) -> int:
    """ha.cf: `#` anywhere starts a comment (heartbeat/config.c)."""
    return line.find(b"#")


def hash_at_word(line: bytes) -> int:
    """authkeys and haresources: `#` at a word's start; `a#b` (a secret) is kept."""
    match = _HASH_AT_WORD.search(line)
    return -1 if match is None else match.end() - 1


def toml_comment(line: bytes) -> int:
    """TOML: `#` outside a string on this line (a multi-line string is not followed)."""
    quote = 0
    index = 0
    while index < len(line):
        byte = line[index]
        if quote:
            if byte == 0x5C and quote == 0x22:  # backslash escape in a basic string
                index += 1
            elif byte == quote:
                quote = 0
        elif byte in (0x22, 0x27):
            quote = byte
        elif byte == 0x23:
            return index
        index += 1
    return -1


def words(text: str) -> list[str]:
    """`text` split on ASCII blanks only (str.split() also splits on U+00A0, U+3000)."""
    return [word for word in _BLANKS.split(text) if word]


@dataclass(frozen=True, slots=True)
class ConfigText:
    """A file's lines (line N is lines[N-1]); a line with bytes that are not UTF-8
    outside a comment is empty here and has an `encoding` error in `errors`."""

    path: Path
    lines: tuple[str, ...]
    errors: tuple[ConfigError, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def decode(data: bytes, path: Path, comment: CommentStart) -> ConfigText:
    """Decode `data` line by line under the module's rule."""
    lines: list[str] = []
    errors: list[ConfigError] = []
    for number, raw in enumerate(data.removeprefix(_BOM).split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            lines.append(raw.decode("utf-8"))
            continue
        except UnicodeDecodeError as exc:
            bad_at = exc.start
        hash_at = comment(raw)
        if 0 <= hash_at < bad_at:
            lines.append(raw[:hash_at].decode("utf-8", errors="strict") + "#")
            continue
        lines.append("")
        errors.append(
            ConfigError(
                path,
                number,
                f"byte 0x{raw[bad_at]:02X} at column {bad_at + 1} is not UTF-8; expected "
                "UTF-8 text (other encodings are allowed only inside a comment)",
                "encoding",
            )
        )
    return ConfigText(path, tuple(lines), tuple(errors))


def read(path: Path, expected: str, comment: CommentStart) -> ConfigText:
    """Read and decode the file at `path`; ConfigError if it is missing or unreadable.

    `expected` names the file in the not-found message ("Heartbeat's ha.cf").
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, None, f"file not found; expected {expected}", "not-found") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}", "unreadable") from None
    return decode(data, path, comment)
