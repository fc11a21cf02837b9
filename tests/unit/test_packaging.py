"""The release artifacts: `python -m build` makes an sdist and a py3-none-any wheel, and the
wheel alone, installed into a fresh venv, runs gossipha without this checkout.

The slow test is a real-parts test (a real build, a real venv, dependencies from the package
registry): marked `registry`, skipped when the registry cannot be reached, failed instead
under CI=true (tests/ci.py). The fast tests keep the package's copy of the tutorial equal
to the docs' and check the demo's refusal when that copy is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.resources import files
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from gossipha import __version__
from gossipha.cli import main
from gossipha.config.authkeys import parse_authkeys
from gossipha.config.model import AuthMethod
from gossipha.lab import scenarios
from gossipha.lab.scenarios import FAST, NODES, TUTORIAL_FILES, write_ha_d
from tests.ci import cannot_run
from tests.conftest import REPO, TUTORIAL

# Each step gets this long on a loaded 2-core machine; the whole test takes ~30 s there.
STEP_TIMEOUT_S = 300.0
# Left out of the copy the build starts from: not sources, and a stale egg-info's
# SOURCES.txt would add its files to the sdist, hiding a file MANIFEST.in forgot.
NOT_SOURCES = (".git", ".venv", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")
NOT_SOURCES += ("build", "dist")  # a stale build/lib would go into the wheel as it is
# Variables that would let the venv's python import something outside the venv.
LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def packaged_tutorial(node: str) -> Path:
    return Path(str(files("gossipha") / "examples" / "tutorial" / node))


@pytest.mark.parametrize("node", NODES)
def test_packaged_tutorial_is_the_docs_tutorial(node: str) -> None:
    # The demo reads the package's copy; readers and the other tests read docs/examples.
    packaged, documented = packaged_tutorial(node), TUTORIAL / node
    assert sorted(p.name for p in packaged.iterdir()) == sorted(TUTORIAL_FILES)
    assert sorted(p.name for p in documented.iterdir()) == sorted(TUTORIAL_FILES)
    for name in TUTORIAL_FILES:
        assert (packaged / name).read_bytes() == (documented / name).read_bytes(), name


def test_lab_ha_d_comes_from_the_package(tmp_path: Path) -> None:
    ha_d, _ = write_ha_d("master", tmp_path, FAST)
    for name in ("authkeys", "haresources"):
        assert (ha_d / name).read_bytes() == (packaged_tutorial("master") / name).read_bytes()
    assert (ha_d / "authkeys").stat().st_mode & 0o777 == 0o600


def test_demo_without_the_tutorial_files_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wheel built without its package data: one line naming the files, before any lab.
    monkeypatch.setattr(scenarios, "files", lambda _package: tmp_path)
    result = CliRunner().invoke(main, ["demo", "--fast", "--scenario", scenarios.SCENARIO_NAMES[0]])
    assert result.exit_code == 2, result.output
    assert "gossipha/examples/tutorial/master/ha.cf" in result.output
    assert "reinstall gossipha" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ---- the real build and install ----


def run(argv: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One step, bounded: a hung pip or build fails the test instead of holding CI."""
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def registry_unreachable(python: Path, tmp_path: Path, env: dict[str, str]) -> str | None:
    """Why pip cannot fetch from the package registry, or None: asked only after a step
    failed, to tell a registry outage from a broken build."""
    probe = run(
        [python, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-d", "probe", "click"],
        tmp_path,
        env,
    )
    return (
        None if probe.returncode == 0 else f"pip cannot reach the registry: {probe.stderr.strip()}"
    )


def require(
    step: str,
    result: subprocess.CompletedProcess[str],
    python: Path,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    """A failed step that fetched from the registry: a skip (or under CI a failure) when the
    registry is down, else a failure with the step's own words."""
    if result.returncode == 0:
        return
    why = registry_unreachable(python, tmp_path, env)
    if why is not None:
        cannot_run(f"{step}: {why}")
    pytest.fail(f"{step} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr}")


@pytest.mark.registry
def test_wheel_installs_into_a_clean_venv_and_runs(tmp_path: Path) -> None:
    if importlib.util.find_spec("build") is None:
        cannot_run("the `build` package is not installed (it is in the test extra)")
    assert not tmp_path.resolve().is_relative_to(REPO)
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
    python = Path(sys.executable)

    # The build starts from a copy, so it sees only sources and leaves nothing in the checkout;
    # build makes the sdist, then the wheel from the unpacked sdist: the sdist must be whole.
    src, dist = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    built = run([python, "-m", "build", "--outdir", dist, src], tmp_path, env)
    require("python -m build", built, python, tmp_path, env)
    wheel = dist / f"gossipha-{__version__}-py3-none-any.whl"
    sdist = dist / f"gossipha-{__version__}.tar.gz"
    assert sorted(p.name for p in dist.iterdir()) == sorted([wheel.name, sdist.name])

    with zipfile.ZipFile(wheel) as whl:
        in_wheel = set(whl.namelist())
    for node in NODES:
        assert {f"gossipha/examples/tutorial/{node}/{n}" for n in TUTORIAL_FILES} <= in_wheel
    assert {"gossipha/py.typed", "gossipha/cli.py", "gossipha/core/node.py"} <= in_wheel
    assert f"gossipha-{__version__}.dist-info/licenses/COPYING" in in_wheel
    assert not {n for n in in_wheel if n.split("/")[0] in ("tests", "bench", "docs", "deploy")}
    with tarfile.open(sdist) as tar:
        top = f"gossipha-{__version__}/"
        in_sdist = {m.name.removeprefix(top) for m in tar.getmembers()}
    assert {
        "pyproject.toml",
        "README.md",
        "COPYING",
        "docs/quickstart.md",
        "docs/examples/tutorial/master/ha.cf",
        "deploy/systemd/gossipha.service",
        "deploy/prometheus/gossipha-rules.yml",
    } <= in_sdist
    # Developing and testing takes a checkout (MANIFEST.in says why), not a release archive.
    assert not {n for n in in_sdist if n.split("/")[0] in ("tests", "bench", "fuzz", ".ci")}

    # A fresh venv (no system site packages) with the wheel and its dependencies only.
    venv = tmp_path / "venv"
    made = run([python, "-m", "venv", venv], tmp_path, env)
    assert made.returncode == 0, made.stderr
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    vpython, gossipha = venv / "bin" / "python", venv / "bin" / "gossipha"
    installed = run([vpython, "-m", "pip", "install", "-q", wheel], tmp_path, env)
    require("pip install of the wheel", installed, vpython, tmp_path, env)

    # From a directory outside the checkout, so nothing of the checkout can be imported.
    home = tmp_path / "elsewhere"
    home.mkdir()
    where = run(
        [
            vpython,
            "-c",
            "import gossipha.cli, orjson, importlib.resources as r; print(orjson.dumps({"
            "'module': gossipha.__file__, "
            "'tutorial': str(r.files('gossipha') / 'examples' / 'tutorial')}).decode())",
        ],
        home,
        env,
    )
    assert where.returncode == 0, where.stderr
    paths = orjson.loads(where.stdout)
    assert Path(paths["module"]).resolve().is_relative_to(venv.resolve()), paths
    assert gossipha.read_text().splitlines()[0] == f"#!{vpython}"

    version = run([gossipha, "--version"], home, env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"gossipha, version {__version__}"

    # check-config on the tutorial's files as the wheel installed them (authkeys to 600 as the
    # tutorial says; a resource.d/nginx so the service resolves on a machine without nginx).
    for node, name in (("master", "masternginx"), ("slave", "slavenginx")):
        ha_d = home / node
        shutil.copytree(Path(paths["tutorial"]) / node, ha_d)
        (ha_d / "authkeys").chmod(0o600)
        (ha_d / "resource.d").mkdir()
        (ha_d / "resource.d" / "nginx").write_text("#!/bin/sh\nexit 0\n")
        (ha_d / "resource.d" / "nginx").chmod(0o755)
        checked = run([gossipha, "check-config", ha_d, "--node-name", name], home, env)
        assert checked.returncode == 0, checked.stderr
        assert f"node {name}" in checked.stdout

    keys = run([gossipha, "keygen", "-o", "-"], home, env)
    assert keys.returncode == 0, keys.stderr
    keyfile = home / "authkeys"
    keyfile.write_text(keys.stdout)
    keyfile.chmod(0o600)
    auth, _ = parse_authkeys(keyfile)
    assert auth.active_key.method is AuthMethod.SHA256

    # The lab's modules import in a clean environment too (pyroute2 from the registry).
    listed = run([gossipha, "demo", "--list", "--json"], home, env)
    assert listed.returncode == 0, listed.stderr
    assert [s["name"] for s in orjson.loads(listed.stdout)] == list(scenarios.SCENARIO_NAMES)
