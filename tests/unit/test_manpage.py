"""gossipha(8) is written from the click command tree (gossipha/manpage.py): it names every
command and option `--help` does, and its text cannot be read by roff as a request."""

from __future__ import annotations

import shutil
import subprocess

import click

from gossipha.cli import main
from gossipha.manpage import escape, paragraphs, render
from tests.ci import cannot_run

REQUESTS = {".TH", ".SH", ".SS", ".PP", ".TP", ".RS", ".RE", ".B", ".br"}


def page() -> str:
    return render(main, date="2026-01-01")


def test_every_command_and_option_is_on_the_page() -> None:
    text = page()
    ctx = click.Context(main, info_name="gossipha", **main.context_settings)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        assert f'.SS "gossipha {escape(name)} ' in text, name
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    assert escape(opt) in text, (name, opt)
    assert text.startswith('.TH GOSSIPHA 8 "2026-01-01" "gossipha ')


def test_no_text_line_is_a_request() -> None:
    for line in page().splitlines():
        if line.startswith((".", "'")):
            assert line.split()[0] in REQUESTS, line


def test_escape_and_paragraphs() -> None:
    assert escape("a-b \\n") == "a\\-b \\en"
    assert escape(".hidden\n'quoted") == "\\&.hidden\n\\&'quoted"
    assert paragraphs("One\n  two.\n\nThree.") == ["One two.", "Three."]
    assert paragraphs("\b\nkeep\nlines") == ["keep\n.br\nlines"]


def test_groff_reads_the_page_without_errors() -> None:
    groff = shutil.which("groff")
    if groff is None:
        cannot_run("groff is not installed (Debian: groff-base, which man-db needs)")
    done = subprocess.run(
        [groff, "-man", "-z", "-ww", "-Tutf8"],
        input=page(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # "cannot adjust line": a long word (sim's --with-fault choices); not an error.
    errors = [line for line in done.stderr.splitlines() if "cannot adjust" not in line]
    assert not errors, errors
