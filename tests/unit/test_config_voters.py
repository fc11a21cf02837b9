"""The voter set: at most 5 by default, odd above two, witnesses first; explicit `voter`
keys used as written; check-config warns about costly or even sets and shows who votes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gossipha.config.errors import ConfigWarning
from gossipha.config.load import load
from gossipha.config.model import Node, NodeRole, select_voters
from gossipha.config.native import load_toml
from gossipha.config.render import as_dict, as_text
from gossipha.config.services import ServiceResolver
from gossipha.config.validate import validate


def _nodes(members: int, witnesses: int = 0) -> tuple[Node, ...]:
    return tuple(
        [Node(f"n{i}") for i in range(members)]
        + [Node(f"w{i}", NodeRole.WITNESS) for i in range(witnesses)]
    )


def _names(nodes: tuple[Node, ...]) -> list[str]:
    return [n.name for n in select_voters(nodes)]


# --- the default rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (1, ["n0"]),
        (2, ["n0", "n1"]),  # the two-node rules (docs/design.md section 2) need both
        (3, ["n0", "n1", "n2"]),
        (4, ["n0", "n1", "n2"]),  # a 4th voter would tolerate no more failures
        (5, ["n0", "n1", "n2", "n3", "n4"]),
        (6, ["n0", "n1", "n2", "n3", "n4"]),
        (128, ["n0", "n1", "n2", "n3", "n4"]),
    ],
)
def test_default_rule_takes_the_first_members_up_to_an_odd_five(
    members: int, expected: list[str]
) -> None:
    assert _names(_nodes(members)) == expected


@pytest.mark.parametrize(
    ("members", "witnesses", "expected"),
    [
        (1, 1, ["n0", "w0"]),
        (2, 1, ["n0", "n1", "w0"]),
        (3, 1, ["n0", "n1", "w0"]),  # 4 nodes: 3 voters, the witness among them
        (4, 1, ["n0", "n1", "n2", "n3", "w0"]),
        (2, 2, ["n0", "w0", "w1"]),
        (9, 2, ["n0", "n1", "n2", "w0", "w1"]),
        (1, 6, ["w0", "w1", "w2", "w3", "w4", "w5"]),  # witnesses always vote
    ],
)
def test_default_rule_counts_every_witness_first(
    members: int, witnesses: int, expected: list[str]
) -> None:
    assert _names(_nodes(members, witnesses)) == expected


def test_default_rule_takes_members_by_name_whatever_the_order() -> None:
    names = ("zeta", "alpha", "mid", "beta", "omega", "a", "b")
    nodes = tuple(Node(name) for name in names)
    # Reported in config order; chosen by sorted name, so a reordered file agrees.
    assert _names(nodes) == ["alpha", "mid", "beta", "a", "b"]
    # Digit runs read as numbers: n2 before n10.
    many = tuple(Node(f"n{i}") for i in (10, 2, 11, 1, 3, 0, 4))
    assert _names(many) == ["n2", "n1", "n3", "n0", "n4"]
    assert set(_names(tuple(reversed(nodes)))) == set(_names(nodes))


# --- explicit choices ------------------------------------------------------------------


def test_voter_true_names_exactly_the_voting_members() -> None:
    nodes = (*_nodes(9), Node("w0", NodeRole.WITNESS))
    marked = tuple(Node(n.name, n.role, True) if n.name in ("n2", "n5", "n8") else n for n in nodes)
    assert _names(marked) == ["n2", "n5", "n8", "w0"]


def test_voter_false_alone_keeps_every_other_node_voting() -> None:
    """Only `voter = false` keys: the rest vote, as before the default bound existed."""
    nodes = tuple(Node(n.name, n.role, False) if n.name == "n1" else n for n in _nodes(9))
    assert _names(nodes) == ["n0", "n2", "n3", "n4", "n5", "n6", "n7", "n8"]


def test_a_witness_votes_unless_it_says_voter_false() -> None:
    nodes = (Node("a", voter=True), Node("b"), Node("q", NodeRole.WITNESS, False))
    assert _names(nodes) == ["a"]
    nodes = (Node("a", voter=True), Node("b", voter=True), Node("q", NodeRole.WITNESS))
    assert _names(nodes) == ["a", "b", "q"]


def test_voter_true_on_a_witness_alone_does_not_unseat_members() -> None:
    """`voter = true` on a witness says nothing new; the members keep voting."""
    nodes = (Node("a"), Node("b"), Node("q", NodeRole.WITNESS, True))
    assert _names(nodes) == ["a", "b", "q"]


# --- loading, warnings, check-config ---------------------------------------------------


def _toml(nodes: list[tuple[str, str]]) -> str:
    """A native file with a broadcast link; `nodes` are (name, extra lines) in order."""
    parts = ['[cluster]\nname = "c"\n']
    for name, extra in nodes:
        parts.append(f"[nodes.{name}]\n{extra}")
    parts.append('[[link]]\nname = "hb"\nkind = "bcast"\ninterface = "eth1"\n')
    parts.append('[[link]]\nname = "svc"\nkind = "bcast"\ninterface = "eth0"\n')
    return "\n".join(parts)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gossipha.toml"
    path.write_text(text)
    keys = tmp_path / "authkeys"
    keys.write_text("auth 1\n1 sha256 s3cret\n")
    keys.chmod(0o600)
    return path


def _warnings(tmp_path: Path, text: str) -> list[ConfigWarning]:
    path = _write(tmp_path, text)
    config, locations, parse_warnings = load_toml(
        path, "n0", resolver=ServiceResolver(tmp_path / "resource.d")
    )
    return [*parse_warnings, *validate(config, locations)]


def _voter_warnings(warnings: list[ConfigWarning]) -> list[ConfigWarning]:
    return [w for w in warnings if "voter" in str(w)]


def test_native_file_without_voter_keys_takes_the_default(tmp_path: Path) -> None:
    path = _write(tmp_path, _toml([(f"n{i}", "") for i in range(7)]))
    config = load(path, "n6", host_addresses=frozenset()).config
    assert [n.name for n in config.voters] == ["n0", "n1", "n2", "n3", "n4"]
    assert all(n.voter is None for n in config.nodes) and not config.voters_explicit
    assert not config.votes("n6") and config.votes("n4")


@pytest.mark.parametrize("members", [2, 3, 4, 5, 6, 128])
def test_the_default_rule_raises_no_voter_warning(tmp_path: Path, members: int) -> None:
    text = _toml([(f"n{i}", "") for i in range(members)])
    assert _voter_warnings(_warnings(tmp_path, text)) == []


def test_an_even_explicit_set_is_warned_at_the_voter_key(tmp_path: Path) -> None:
    text = _toml([(f"n{i}", "voter = true\n" if i < 4 else "") for i in range(6)])
    [warning] = _voter_warnings(_warnings(tmp_path, text))
    line = text.splitlines().index("voter = true") + 1
    assert (warning.path, warning.line) == (tmp_path / "gossipha.toml", line)
    assert "4 voters (n0, n1, n2, n3) as written" in str(warning)
    assert "no more failures than 3" in str(warning) and "odd" in str(warning)


def test_more_than_seven_explicit_voters_is_warned(tmp_path: Path) -> None:
    text = _toml([(f"n{i}", "voter = false\n" if i == 0 else "") for i in range(10)])
    [warning] = _voter_warnings(_warnings(tmp_path, text))
    assert "9 voters as written" in str(warning) and "at most 7" in str(warning)
    text = _toml([(f"n{i}", "voter = false\n" if i < 2 else "") for i in range(10)])
    warnings = _voter_warnings(_warnings(tmp_path, text))
    assert len(warnings) == 2  # 8: too many, and even
    assert {"at most 7" in str(w) for w in warnings} == {True, False}


@pytest.mark.parametrize("count", [3, 5, 7])
def test_an_odd_explicit_set_up_to_seven_is_quiet(tmp_path: Path, count: int) -> None:
    text = _toml([(f"n{i}", "voter = true\n" if i < count else "") for i in range(9)])
    assert _voter_warnings(_warnings(tmp_path, text)) == []


def test_too_few_explicit_voters_are_warned(tmp_path: Path) -> None:
    text = _toml([(f"n{i}", "voter = true\n" if i < 2 else "") for i in range(3)])
    [warning] = _voter_warnings(_warnings(tmp_path, text))
    assert "only 2 voters (n0, n1) as written among 3 nodes" in str(warning)
    assert "two-node rules" in str(warning)
    text = _toml([(f"n{i}", "voter = true\n" if i < 1 else "") for i in range(3)])
    [warning] = _voter_warnings(_warnings(tmp_path, text))
    assert "if it is down no node can get a lease" in str(warning)


def test_two_members_and_a_witness_default_to_three_voters(tmp_path: Path) -> None:
    text = _toml([("n0", ""), ("n1", ""), ("q", 'role = "witness"\n')])
    assert _voter_warnings(_warnings(tmp_path, text)) == []
    path = _write(tmp_path, text)
    config = load(path, "n0", host_addresses=frozenset()).config
    assert [n.name for n in config.voters] == ["n0", "n1", "q"]


def test_ha_d_nodes_follow_the_default_rule(master_ha_d: Path) -> None:
    ha_cf = master_ha_d / "ha.cf"
    ha_cf.write_text(ha_cf.read_text() + "node thirdnginx\nnode fourthnginx\n")
    config = load(master_ha_d, "masternginx", host_addresses=frozenset()).config
    assert [n.name for n in config.nodes][2:] == ["thirdnginx", "fourthnginx"]
    assert [n.name for n in config.voters] == ["masternginx", "slavenginx", "fourthnginx"]
    [warning] = [w for w in load(master_ha_d, "masternginx").warnings if "vote" in str(w)]
    line = ha_cf.read_text().splitlines().index("node thirdnginx") + 1  # the first left out
    assert (warning.path, warning.line) == (ha_cf, line)
    assert "the same `node` lines in every node's ha.cf" in str(warning)


def test_the_tutorial_pair_still_has_two_voters(master_ha_d: Path) -> None:
    loaded = load(master_ha_d, "masternginx", host_addresses=frozenset())
    assert not [w for w in loaded.warnings if "vote" in str(w)]
    config = loaded.config
    assert [n.name for n in config.voters] == ["masternginx", "slavenginx"]
    assert as_dict(config)["voters"] == ["masternginx", "slavenginx"]


def test_render_shows_who_votes_and_how(tmp_path: Path) -> None:
    path = _write(tmp_path, _toml([(f"n{i}", "") for i in range(6)]))
    config = load(path, "n0", host_addresses=frozenset()).config
    doc = as_dict(config)
    assert [n["voter"] for n in doc["nodes"]] == [True] * 5 + [False]
    assert doc["voters"] == ["n0", "n1", "n2", "n3", "n4"]
    assert doc["voter_rule"] == "default"
    assert "voters (5 of 6, default rule): n0, n1, n2, n3, n4" in as_text(config)


def test_check_config_json_lists_the_voters(tmp_path: Path) -> None:
    text = _toml([(f"n{i}", "voter = true\n" if i in (1, 3, 5) else "") for i in range(7)])
    path = _write(tmp_path, text)
    command = [sys.executable, "-m", "gossipha", "check-config", str(path), "--json"]
    result = subprocess.run(
        [*command, "--node-name", "n0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["voters"] == ["n1", "n3", "n5"]
    assert doc["voter_rule"] == "explicit"
    assert {n["name"]: n["voter"] for n in doc["nodes"]} == {
        f"n{i}": i in (1, 3, 5) for i in range(7)
    }
