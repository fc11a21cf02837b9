"""Every gossipha.toml key the manual, the help texts and deploy/ name is one the loader takes.

`check-config` refuses unknown keys, so a key that only the docs know is a trap: a reader
copies it and the agent will not start. The schema here is the loader's own key lists
(`gossipha/config/native.py`); `test_schema_matches_what_the_loader_refuses` checks that
each table is mapped to the list the loader really uses for it.

What is read:
- ```` ```toml ```` blocks: merged into `docs/examples/native/gossipha.toml` (so a partial
  snippet need not repeat `[cluster]` and the links) and loaded with the real loader. A
  block marked ```` ```toml rejected ```` shows a mistake on purpose: it must be refused.
- inline code: `[observe] listen`, `[[link]] kind = "ucast"`, `observe.listen`,
  `table.key:key` (two keys of one table), `key = value`, `{ vip = ... }`, and a list of
  keys after a table (`[[observe.hook]]`: `path`, `timeout`).
- plain text (click help, comments in deploy/ and docs/examples/): `table.key` and
  `[table]`, where `table` is one of the top-level tables.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from gossipha.cli import main
from gossipha.config import native
from gossipha.config.errors import ConfigError
from gossipha.config.load import load
from gossipha.config.services import ServiceResolver
from tests.docs.test_runnable import DOCS, REPO, Block, doc_files, fenced_blocks

KeyPath = tuple[str, ...]

# Table path (array indices left out) -> the keys it takes; None: the keys are names the
# user chooses (node names, link names in `addresses`, node names in `priorities`).
TABLES: dict[KeyPath, tuple[str, ...] | None] = {
    (): native._TOP_KEYS,
    ("cluster",): native._CLUSTER_KEYS,
    ("timings",): native._TIMING_KEYS,
    ("auth",): native._AUTH_KEYS,
    ("nodes",): None,
    ("nodes", "*"): native._NODE_KEYS,
    ("nodes", "*", "addresses"): None,
    ("link",): native._LINK_KEYS,
    ("ping",): native._PING_KEYS,
    ("group",): native._GROUP_KEYS,
    ("group", "priorities"): None,
    # one list for both kinds of resource; which kind takes which key is the loader's job
    ("group", "resources"): tuple(dict.fromkeys((*native._VIP_KEYS, *native._SERVICE_KEYS))),
    ("group", "check"): native._CHECK_KEYS,
    ("respawn",): native._RESPAWN_KEYS,
    ("logging",): native._LOGGING_KEYS,
    ("observe",): native._OBSERVE_KEYS,
    ("observe", "hook"): native._HOOK_KEYS,
}
TOP = native._TOP_KEYS
ALL_KEYS = frozenset(k for keys in TABLES.values() if keys for k in keys)
# `name = value` in inline code that is not about gossipha.toml, with the reason (none
# today: Prometheus labels and systemd settings are written without blanks around `=`).
NOT_CONFIG: dict[str, str] = {}

BASE = REPO / "docs" / "examples" / "native" / "gossipha.toml"
BASE_NODE = "masternginx"
REJECTED = "rejected"
# `table.ext` in prose is a file name (`wire/auth.py`), not a key.
FILE_SUFFIXES = frozenset({"py", "md", "toml", "cf", "yml", "yaml", "json", "service", "txt"})

_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY = r'(?:[A-Za-z0-9_-]+|"[^"]*")'
_TOP = "|".join(TOP)
# Only names that start with a top-level table count: `[standby]` is a status marker.
_HEADER = re.compile(rf"^\[(\[?)\s*((?:{_TOP})(?:\s*\.\s*{_KEY})*)\s*\]\1(.*)$")
_DOTTED = re.compile(rf"^((?:{_TOP})(?:\.{_KEY})+)(?::({_IDENT}))?$")
# `key = value` with blanks, as TOML is written here; `Nice=-10`, `a=b` are systemd, shell.
_ASSIGN = re.compile(rf"^({_IDENT}) +=(?: |$)")
_CODE = re.compile(r"(`+)(.+?)\1")
_LIST_END = re.compile(r"[);]")
_PLAIN_DOTTED = re.compile(rf"(?<![\w./$-])((?:{_TOP})(?:\.{_IDENT})+)(?::({_IDENT}))?(?![\w(])")
_PLAIN_HEADER = re.compile(rf"\[\[?((?:{_TOP})(?:\.{_IDENT})*)\]\]?")


def problem(path: KeyPath) -> str | None:
    """Why `path` is not a key or table the loader accepts, or None when it is."""
    table: KeyPath = ()
    for i, part in enumerate(path):
        if table not in TABLES:
            return f"{'.'.join(path[:i])} is a value, not a table"
        allowed = TABLES[table]
        if allowed is None:
            table = (*table, "*")
        elif part in allowed:
            table = (*table, part)
        else:
            where = ".".join(t for t in table if t != "*") or "top level"
            return f"unknown key {part!r} in {where}; it takes: {', '.join(allowed)}"
    return None


def key_paths(data: Mapping[str, Any], prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """Every key path of a parsed TOML document, array indices left out."""
    for key, value in data.items():
        path = (*prefix, key)
        yield path
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                yield from key_paths(item, path)


def _parse_path(text: str) -> KeyPath | None:
    """A dotted TOML key (`nodes."a.b".role`) as a path, or None if it is not one."""
    try:
        data: Any = tomllib.loads(f"{text} = 0")
    except tomllib.TOMLDecodeError:
        return None
    path: KeyPath = ()
    while isinstance(data, dict):
        ((key, data),) = data.items()
        path = (*path, key)
    return path


@dataclass(frozen=True, slots=True)
class Mention:
    """A key path named somewhere, and where (file:line or command option)."""

    where: str
    path: KeyPath
    text: str


def code_mentions(code: str) -> tuple[KeyPath | None, list[KeyPath]]:
    """Key paths one inline code span names, and the table it names (for a list after it)."""
    code = code.strip()
    header = _HEADER.match(code)
    if header:
        table = _parse_path(header.group(2))
        if table is None:
            return None, []
        rest = header.group(3).strip()
        first = re.match(rf"^({_IDENT})\s*(?:=|,|$)", rest)
        return table, [table, (*table, first.group(1))] if first else [table]
    dotted = _DOTTED.match(code)
    if dotted:
        path = _parse_path(dotted.group(1))
        if path is None or path[-1] in FILE_SUFFIXES:
            return None, []
        more = [(*path[:-1], dotted.group(2))] if dotted.group(2) else []
        return path, [path, *more]
    if code.startswith("{") and code.endswith("}"):
        try:
            table = tomllib.loads(f"x = {code}")["x"]
        except tomllib.TOMLDecodeError:
            return None, []
        if "vip" in table or "service" in table:  # other inline tables are addresses, ...
            return None, [("group", "resources", key) for key in table]
        return None, []
    assign = _ASSIGN.match(code)
    if assign:
        try:
            tomllib.loads(code)
        except tomllib.TOMLDecodeError:
            return None, []  # `e = max_epoch`, `LimitMEMLOCK=infinity`: not TOML
        key = assign.group(1)
        return None, [] if key in ALL_KEYS or key in NOT_CONFIG else [("?", key)]
    return None, []


def markdown_mentions(name: str, lines: list[str], skip: set[int]) -> Iterator[Mention]:
    """Key paths in the inline code of Markdown `lines`, except the line numbers in `skip`."""
    for number, line in enumerate(lines, 1):
        if number in skip:
            continue
        for span in _CODE.finditer(line):
            table, paths = code_mentions(span.group(2))
            for found in paths:
                yield Mention(f"{name}:{number}", found, span.group(0))
            if table is None or not line[span.end() :].startswith(":"):
                continue
            # "`[[observe.hook]]`: `path`, `events`, `timeout`": keys of that table, up to
            # a closing parenthesis or a semicolon (or the end of the paragraph).
            text, follow = line[span.end() :], number
            while not _LIST_END.search(text) and follow < len(lines) and lines[follow].strip():
                text += " " + lines[follow]
                follow += 1
            for item in _CODE.finditer(_LIST_END.split(text, 1)[0]):
                key = re.fullmatch(_IDENT, item.group(2).strip())
                if key:
                    yield Mention(f"{name}:{number}", (*table, key.group(0)), item.group(0))


def markdown_file_mentions(path: Path) -> Iterator[Mention]:
    """markdown_mentions of a file, outside its fenced blocks (those are checked whole)."""
    fenced: set[int] = set()
    for block in fenced_blocks(path):
        fenced.update(range(block.line, block.line + block.text.count("\n") + 2))
    lines = path.read_text(encoding="utf-8").splitlines()
    yield from markdown_mentions(str(path.relative_to(REPO)), lines, fenced)


def plain_mentions(where: str, text: str) -> Iterator[Mention]:
    """`table.key` and `[table]` in prose without backticks (help texts, comments)."""
    for match in _PLAIN_DOTTED.finditer(text):
        path = tuple(match.group(1).split("."))
        if path[-1] in FILE_SUFFIXES:
            continue
        yield Mention(where, path, match.group(0))
        if match.group(2):
            yield Mention(where, (*path[:-1], match.group(2)), match.group(0))
    for match in _PLAIN_HEADER.finditer(text):
        yield Mention(where, tuple(match.group(1).split(".")), match.group(0))


def help_texts() -> Iterator[tuple[str, str]]:
    """(command or option, text) for every help string of the `gossipha` command."""

    def walk(command: click.Command, name: str) -> Iterator[tuple[str, str]]:
        for text in (command.help, command.short_help, command.epilog):
            if text:
                yield name, text
        for param in command.params:
            text = getattr(param, "help", None)
            if text:
                yield f"{name} {param.opts[0] if param.opts else param.name}", text
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for sub in command.list_commands(ctx):
                found = command.get_command(ctx, sub)
                assert found is not None, sub
                yield from walk(found, f"{name} {sub}")

    yield from walk(main, "gossipha")


def comment_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The comments of a YAML, TOML, systemd or ha.cf file; the whole text of other files."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".json":
        yield from enumerate(lines, 1)
        return
    for number, line in enumerate(lines, 1):
        if "#" in line:
            yield number, line[line.index("#") :]


def deploy_and_example_files() -> list[Path]:
    roots = (REPO / "deploy", DOCS / "examples")
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def all_mentions() -> Iterator[Mention]:
    for path in doc_files():
        yield from markdown_file_mentions(path)
    for where, text in help_texts():
        yield from plain_mentions(where, text)
    for path in deploy_and_example_files():
        for number, line in comment_lines(path):
            yield from plain_mentions(f"{path.relative_to(REPO)}:{number}", line)


# --- the tests -------------------------------------------------------------------------


def test_every_key_named_in_docs_help_and_deploy_is_in_the_schema() -> None:
    wrong = []
    for mention in all_mentions():
        if mention.path[0] == "?":  # `key = value` outside any table: any table's key will do
            wrong.append(f"{mention.where}: {mention.text}: no table has {mention.path[1]!r}")
        elif (why := problem(mention.path)) is not None:
            wrong.append(f"{mention.where}: {mention.text}: {why}")
    assert not wrong, "keys check-config would refuse:\n" + "\n".join(wrong)


def test_the_extractors_find_the_forms_the_docs_use() -> None:
    """The forms once written wrongly are read, so the check above is not vacuous."""
    wrong = "(`observe.hooks`: `path`, `events` = notice kinds, `timeout_s`)"
    found = [m.path for m in markdown_mentions("x", [wrong], set())]
    assert ("observe", "hooks") in found and ("observe", "hooks", "timeout_s") in found
    code = code_mentions("observe.listen_address:listen_port")[1]
    assert code == [("observe", "listen_address"), ("observe", "listen_port")]
    assert code_mentions('[timings] keepalive = "2s"')[1] == [
        ("timings",),
        ("timings", "keepalive"),
    ]
    assert code_mentions("listen_address = 1")[1] == [("?", "listen_address")]
    assert code_mentions("wire/auth.py")[1] == [] and code_mentions("auth.py")[1] == []
    assert problem(("observe", "listen_address")) is not None
    assert problem(("nodes", "web1.example.com", "addresses", "hb")) is None
    assert problem(("nodes", "a", "addresses", "hb", "x")) is not None
    plain = [m.path for m in plain_mentions("x", "instead of observe.listen_address:listen_port.")]
    assert plain == [("observe", "listen_address"), ("observe", "listen_port")]
    assert [m.path for m in plain_mentions("x", "{{ $labels.group }} gossipha.observe.api")] == []


def test_schema_matches_what_the_loader_refuses(tmp_path: Path) -> None:
    """Each table of TABLES is checked against the loader: a made-up key there is refused
    with exactly that table's key list (resources: the list of the vip or service kind)."""
    base = tomllib.loads(BASE.read_text(encoding="utf-8"))
    base["respawn"] = [{"user": "hacluster", "command": ["/bin/true"]}]
    for table, allowed in TABLES.items():
        if allowed is None or table == ():
            continue
        data = copy.deepcopy(base)
        target: Any = data
        for part in table:
            target = next(iter(target.values())) if part == "*" else target[part]
            if isinstance(target, list):
                target = target[0]
        target["zz_probe"] = 1
        with pytest.raises(ConfigError) as caught:
            _load(tmp_path, data)
        listed = str(caught.value).split("expected one of: ", 1)[1].split(", ")
        assert "unknown key 'zz_probe'" in str(caught.value), table
        if table == ("group", "resources"):
            assert set(listed) <= set(allowed), table
        else:
            assert listed == list(allowed), table
    assert all(table[0] in TOP for table in TABLES if table)


def test_every_key_the_loader_takes_is_documented_in_configuration_md() -> None:
    """The reference names each key as `key`, or each table as its header (`[[link]]`)."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = []
    for table, allowed in TABLES.items():
        for key in allowed or ():
            dotted = re.escape(".".join(p for p in (*table, key) if p != "*"))
            if f"`{key}`" not in text and not re.search(rf"`\[\[?{dotted}[.\]]", text):
                missing.append(".".join((*table, key)))
    assert not missing, f"docs/configuration.md does not name: {missing}"


def toml_blocks() -> list[Any]:
    return [
        pytest.param(b, id=b.where)
        for path in doc_files()
        for b in fenced_blocks(path)
        if b.info.split()[:1] == ["toml"]
    ]


@pytest.mark.parametrize("block", toml_blocks())
def test_toml_blocks_in_the_docs_load(block: Block, tmp_path: Path) -> None:
    snippet = tomllib.loads(block.text)
    data = _merge(tomllib.loads(BASE.read_text(encoding="utf-8")), snippet)
    if REJECTED in block.info.split()[1:]:
        with pytest.raises(ConfigError) as caught:
            _load(tmp_path, data)
        # refused for what the block shows, not for something in the base file
        assert any(".".join(p) in str(caught.value) for p in key_paths(snippet)), caught.value
        return
    wrong = [f"{'.'.join(p)}: {why}" for p in key_paths(snippet) if (why := problem(p))]
    assert not wrong, f"{block.where}:\n" + "\n".join(wrong)
    try:
        _load(tmp_path, data)
    except ConfigError as exc:
        pytest.fail(f"{block.where}: check-config refuses it (merged into {BASE.name}): {exc}")


@pytest.mark.parametrize("path", sorted((DOCS / "examples").rglob("*.toml")), ids=str)
def test_example_files_name_only_schema_keys(path: Path) -> None:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    wrong = [f"{'.'.join(p)}: {why}" for p in key_paths(data) if (why := problem(p))]
    assert not wrong, f"{path.relative_to(REPO)}:\n" + "\n".join(wrong)


# --- helpers ---------------------------------------------------------------------------


def _merge(base: dict[str, Any], snippet: Mapping[str, Any]) -> dict[str, Any]:
    """`snippet` over `base`: tables merge key by key, anything else (arrays too) replaces."""
    out = dict(base)
    for key, value in snippet.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _inline(value: Any) -> str:
    """One TOML value on one line (inline tables and arrays): enough to write any config."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return native.toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{native.format_key(k)} = {_inline(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(f"no TOML for {value!r}")


def _load(directory: Path, data: Mapping[str, Any]) -> None:
    """Write `data` as a gossipha.toml beside an authkeys file and load it for BASE_NODE."""
    path = directory / "gossipha.toml"
    path.write_text("".join(f"{native.format_key(k)} = {_inline(v)}\n" for k, v in data.items()))
    keys = directory / "authkeys"
    if not keys.exists():
        keys.write_text("auth 1\n1 sha256 s3cret\n")
        keys.chmod(0o600)
    resource_d = directory / "resource.d"
    resource_d.mkdir(exist_ok=True)
    (resource_d / "nginx").write_text("#!/bin/sh\n")
    resolver = ServiceResolver(
        resource_d=resource_d,
        init_d=directory / "init.d",
        systemd_dirs=(directory / "systemd",),
        ocf_root=directory / "ocf",
    )
    load(path, BASE_NODE, resolver=resolver, host_addresses=frozenset())
