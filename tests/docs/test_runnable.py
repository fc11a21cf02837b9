"""The manual's commands, run: every fenced block marked runnable must exit 0.

Convention (docs/README.md): a fenced block whose info string is `sh runnable` (or
`bash runnable`) is a self-contained bash script. Each runs with `bash -euo pipefail` in a
fresh empty directory, HOME in a temporary directory, the repository's `.venv/bin` first
on PATH (so `gossipha` is this checkout's), `GOSSIPHA_REPO` set to the repository root and
`GOSSIPHA_STATE_DIR` to a scratch directory, and at most `TIMEOUT_S` seconds. A failure is
named by file and line (`docs/quickstart.md:42`) and shows the block's output.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
TIMEOUT_S = 120.0
MARK = "runnable"
SHELLS = frozenset({"sh", "bash"})

# The manual the issue asks for (issue 7), each listed in docs/README.md.
MANUAL = (
    "quickstart.md",
    "migrating-from-heartbeat.md",
    "configuration.md",
    "design.md",
    "failure-detection.md",
    "protocol.md",
    "security.md",
    "observability.md",
    "operations.md",
    "benchmarks.md",
)
# At least this many runnable blocks per file, so dropping a marker is caught.
MIN_RUNNABLE = {
    "docs/README.md": 1,
    "docs/quickstart.md": 4,
    "docs/migrating-from-heartbeat.md": 5,
    "docs/operations.md": 3,
}

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: where it starts (the opening fence) and its text."""

    path: Path
    line: int
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def runnable(self) -> bool:
        words = self.info.split()
        return len(words) >= 2 and words[0] in SHELLS and MARK in words[1:]


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file (CommonMark fences; an unclosed one runs to
    the end of the file, as CommonMark says)."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None or (opening.group(2)[0] == "`" and "`" in opening.group(3)):
            i += 1
            continue
        indent, fence, info = len(opening.group(1)), opening.group(2), opening.group(3).strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing.group(2)[0] == fence[0]
                and len(closing.group(2)) >= len(fence)
                and not closing.group(3).strip()
            ):
                break
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        blocks.append(Block(path, i + 1, info, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def runnable_blocks() -> list[Block]:
    return [b for path in doc_files() for b in fenced_blocks(path) if b.runnable]


def venv_bin() -> Path:
    """The bin directory holding this checkout's `gossipha`: the running interpreter's
    (tests run as .venv/bin/python -m pytest) or else the repository's .venv."""
    for candidate in (Path(sys.executable).parent, REPO / ".venv" / "bin"):
        if (candidate / "gossipha").is_file():
            return candidate
    pytest.fail(f"no gossipha next to {sys.executable} nor in {REPO / '.venv/bin'}; run setup")


def run_block(text: str) -> subprocess.CompletedProcess[str]:
    """Run one block as the convention says; the result carries stdout and stderr.

    The directory is short on purpose (a unix socket path has at most 107 bytes), and the
    block runs in its own session so nothing it started outlives it, even on a timeout.
    """
    with tempfile.TemporaryDirectory(prefix="gossipha-doc-") as tmp:
        base = Path(tmp)
        work, home, state = base / "work", base / "home", base / "state"
        for d in (work, home, state):
            d.mkdir()
        script = base / "block.sh"
        script.write_text(text, encoding="utf-8")
        env = {
            **os.environ,
            "HOME": str(home),
            "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "GOSSIPHA_REPO": str(REPO),
            "GOSSIPHA_STATE_DIR": str(state),
            "LC_ALL": "C.UTF-8",
        }
        env.pop("VIRTUAL_ENV", None)
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"timed out after {TIMEOUT_S:g}s; output so far:\n{stdout}\n{stderr}")
        finally:
            _kill_session(proc.pid, signal.SIGTERM)  # whatever the block left running
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _kill_session(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.where)
def test_runnable_block_exits_0(block: Block) -> None:
    result = run_block(block.text)
    assert result.returncode == 0, (
        f"{block.where}: exit {result.returncode}\n--- block\n{block.text}"
        f"--- stdout (tail)\n{_tail(result.stdout)}\n--- stderr (tail)\n{_tail(result.stderr)}"
    )


@pytest.mark.parametrize(("name", "minimum"), sorted(MIN_RUNNABLE.items()))
def test_manual_pages_keep_their_runnable_blocks(name: str, minimum: int) -> None:
    found = [b for b in fenced_blocks(REPO / name) if b.runnable]
    assert len(found) >= minimum, f"{name}: {len(found)} runnable blocks, expected >= {minimum}"


def test_every_manual_page_exists_and_is_in_the_index() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", index))
    missing = [name for name in MANUAL if not (DOCS / name).is_file()]
    assert not missing, f"manual pages missing from docs/: {missing}"
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    unlisted = sorted((set(MANUAL) | pages) - linked)
    assert not unlisted, f"docs/README.md does not link: {unlisted}"


def test_relative_links_in_the_docs_resolve() -> None:
    broken = []
    for path in doc_files():
        in_code = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _FENCE.match(line):
                in_code = not in_code
            if in_code:
                continue
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue
                if not (path.parent / target.split("#", 1)[0]).exists():
                    broken.append(f"{path.relative_to(REPO)}:{number}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


# ---------------------------------------------------------------- the harness itself


def test_a_failing_command_fails_the_block() -> None:
    assert run_block("true\nfalse\ntrue\n").returncode != 0


def test_a_failure_inside_a_pipe_fails_the_block() -> None:
    assert run_block("false | cat\n").returncode != 0


def test_an_unset_variable_fails_the_block() -> None:
    assert run_block('echo "$NO_SUCH_VARIABLE_HERE"\n').returncode != 0


def test_blocks_run_in_an_empty_directory_with_this_checkout_s_gossipha() -> None:
    script = (
        'test -z "$(ls -A)"\n'
        'test "$(command -v gossipha)" = "$(dirname "$(command -v python)")/gossipha"\n'
        'test -f "$GOSSIPHA_REPO/docs/README.md"\n'
        'test "$HOME" != "$PWD" && test -d "$HOME" && test -d "$GOSSIPHA_STATE_DIR"\n'
        "gossipha --version\n"
    )
    result = run_block(script)
    assert result.returncode == 0, result.stderr


def test_extraction_finds_marked_blocks_with_their_opening_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```sh runnable\necho one\n```\n\n```sh\nnot run\n```\n\n"
        "~~~bash runnable\necho two\n~~~\n\n```toml\nx = 1\n```\n",
        encoding="utf-8",
    )
    blocks = fenced_blocks(page)
    assert [(b.line, b.runnable, b.text) for b in blocks] == [
        (3, True, "echo one\n"),
        (7, False, "not run\n"),
        (11, True, "echo two\n"),
        (15, False, "x = 1\n"),
    ]


# ---------------------------------------------------------------- names the docs cite

# A command line in code: at the start, after a shell operator, `$(`, `sudo`, `if`, `then`
# or `!`, optionally with a path (`.venv/bin/gossipha`). Prose like "gossipha does" is not.
_COMMAND = re.compile(
    r"(?:^\s*|[;&|]\s*|\$\(\s*|\b(?:sudo|if|then)\s+|!\s+)"
    r"(?:[\w./-]*/)?gossipha\s+([a-z][a-z-]*)([^`\n|;&)#]*)"
)
_METRIC = re.compile(r"\bgossipha_[a-z_]*[a-z]\b")


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of fenced blocks and inline code spans, with their line numbers."""
    found: list[tuple[int, str]] = []
    in_block = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            in_block = not in_block
            continue
        if in_block:
            found.append((number, line))
        else:
            found.extend((number, span) for span in re.findall(r"`([^`]+)`", line))
    return found


def test_gossipha_commands_and_options_shown_in_the_docs_exist() -> None:
    import click

    from gossipha.cli import main

    # Through click's lookup, not main.commands: a command may be loaded only when asked for.
    ctx = click.Context(main)
    bad, seen = [], 0
    for path in doc_files():
        for number, text in _code_lines(path):
            for match in _COMMAND.finditer(text):
                seen += 1
                where = f"{path.relative_to(REPO)}:{number}"
                command = main.get_command(ctx, match.group(1))
                if command is None:
                    bad.append(f"{where}: no command `gossipha {match.group(1)}`")
                    continue
                options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
                for flag in re.findall(r"(?<!\S)(--?[a-z][a-z-]*)", match.group(2)):
                    if flag not in options and flag not in ("-h", "--help"):
                        bad.append(f"{where}: `gossipha {command.name}` has no {flag}")
    assert seen > 50, f"only {seen} gossipha command lines found: is the pattern broken?"
    assert not bad, "\n".join(bad)


def test_metric_names_in_the_docs_exist() -> None:
    source = (REPO / "gossipha" / "observe" / "metrics.py").read_text(encoding="utf-8")
    defined = set(re.findall(r'"(gossipha_[a-z_]+)"', source))
    bad = []
    for path in doc_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name in _METRIC.findall(line):
                base = re.sub(r"_(bucket|count|sum|created)$", "", name)
                base = "gossipha_agent" if base == "gossipha_agent_info" else base
                if base not in defined:
                    bad.append(f"{path.relative_to(REPO)}:{number}: {name}")
    assert not bad, "metrics not defined in gossipha/observe/metrics.py:\n" + "\n".join(bad)
