"""Configuration errors and warnings that name the file, the line and what was expected.

Each error carries a stable `code` (one of CODES) for scripts: `gossipha check-config
--json` lists them, and docs/configuration.md ("Error codes") says what each means.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# The exit status of a command its configuration stops: sysexits.h's EX_CONFIG, which
# systemd shows as `status=78/CONFIG`. Usage errors (click's) stay 2, failures at run time 1.
EXIT_CONFIG = 78

# The machine-readable error codes; a script may rely on these names (add, never rename).
CODES: Final = (
    "not-found",  # the file or directory is not there
    "unreadable",  # it is there but cannot be read (permissions, not a regular file)
    "encoding",  # bytes that are not UTF-8 outside a comment
    "syntax",  # a line or TOML the format cannot read: wrong number of values, bad TOML
    "unknown-directive",  # an ha.cf directive or TOML key the format does not have
    "missing",  # something required is absent (an `auth N` line, a TOML key)
    "duplicate",  # written twice where once is allowed
    "bad-number",  # not a whole number in ASCII digits, or out of its range
    "bad-duration",  # not a duration such as 2, 2s, 500ms
    "bad-address",  # not an IP address, or not a network interface name
    "bad-value",  # any other value the key or directive does not take
    "unsupported",  # a Heartbeat feature gossipha refuses (stonith, serial, crm on, ...)
    "insecure",  # a key file group or others may read
    "rule",  # values that are each fine but break a rule together (deadtime > keepalive)
)


class ConfigError(Exception):
    """A configuration the agent must not start with; shown as `file:line: message`."""

    def __init__(
        self, path: Path | str, line: int | None, message: str, code: str = "bad-value"
    ) -> None:
        assert code in CODES, code
        self.path = Path(path)
        self.line = line
        self.message = message
        self.code = code
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{where}: {self.message}"

    def each(self) -> tuple[ConfigError, ...]:
        """Every single error this one stands for (itself; ConfigErrors: all it holds)."""
        return (self,)

    def as_dict(self) -> dict[str, object]:
        """For `check-config --json`: keys file, line, code, message (stable)."""
        return {
            "file": str(self.path),
            "line": self.line,
            "code": self.code,
            "message": self.message,
        }


class ConfigErrors(ConfigError):
    """Every error found in one read, in file order; it also reads as the first of them,
    so code that catches ConfigError and shows one line still works."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        assert errors, "ConfigErrors needs at least one error"
        self.errors = tuple(e for error in errors for e in error.each())
        first = self.errors[0]
        super().__init__(first.path, first.line, first.message, first.code)

    def render(self) -> str:
        return "\n".join(error.render() for error in self.errors)

    def each(self) -> tuple[ConfigError, ...]:
        return self.errors


class Collector:
    """Gathers errors so a whole file is checked in one run, as `keepalived -t` does.

    `with collector.attempt():` around each independent item (a line, a table); an error
    inside is recorded and the read goes on with the next item.
    """

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    @contextmanager
    def attempt(self) -> Iterator[None]:
        try:
            yield
        except ConfigError as exc:
            self.errors.extend(exc.each())

    def add(self, error: ConfigError) -> None:
        self.errors.extend(error.each())

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigErrors(self.errors)


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Something the operator should hear about that does not stop a start."""

    path: Path
    line: int | None
    message: str

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{where}: warning: {self.message}"
