"""Configuration errors and warnings that name the file, the line and what was expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The exit status of a command its configuration stops: sysexits.h's EX_CONFIG, which
# systemd shows as `status=78/CONFIG`. Usage errors (click's) stay 2, failures at run time 1.
EXIT_CONFIG = 78


class ConfigError(Exception):
    """A configuration the agent must not start with; shown as `file:line: message`."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Something the operator should hear about that does not stop a start."""

    path: Path
    line: int | None
    message: str

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else f"{self.path}"
        return f"{where}: warning: {self.message}"
