"""The Debian package: `bash scripts/build-deb.sh` builds it, it holds what the issue lists
and nothing of the test tooling, and installed with apt it runs as the manual says; then it
is purged, so the machine is left as it was found.

A real-parts test: the build installs its build dependencies with apt and reads PyPI for
the libraries the package carries, and the install needs root. Marked `registry`; skipped
where it cannot run (not root, no apt), failed instead under CI=true (tests/ci.py). It takes
about two minutes on a loaded 2-core machine, most of it pip inside the build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gossipha import __version__
from gossipha.lab.scenarios import NODES, TUTORIAL_FILES
from tests.ci import cannot_run
from tests.conftest import REPO

# The build is the slow step (pip installs a dozen wheels): generous on a loaded machine.
STEP_TIMEOUT_S = 900.0
# What scripts/build-deb.sh reads; copied so the build's dist/ lands outside the checkout.
SOURCES = ("scripts", "debian", "gossipha", "docs", "deploy")
SOURCE_FILES = ("pyproject.toml", "MANIFEST.in", "README.md", "COPYING")
# Path components no file in the package may have: the repository's test and lab tooling.
NOT_SHIPPED = {"tests", "bench", "fuzz", "netns", "scripts", ".ci"}
DOC = Path("/usr/share/doc/gossipha")
LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def run(argv: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def installed(env: dict[str, str]) -> bool:
    status = run(["dpkg-query", "-W", "-f", "${db:Status-Status}", "gossipha"], Path("/"), env)
    return status.returncode == 0 and status.stdout.strip() == "installed"


def contents(deb: Path, env: dict[str, str]) -> dict[str, str]:
    """Path (without ./) -> type letter of `dpkg-deb -c` (d, -, l); links as `path -> to`."""
    listed = run(["dpkg-deb", "-c", deb], deb.parent, env)
    assert listed.returncode == 0, listed.stderr
    paths: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        mode, _owner, _size, _date, _time, name = line.split(maxsplit=5)
        paths[name.split(" -> ")[0].removeprefix("./").rstrip("/")] = mode[0]
    return paths


def is_tooling(path: str) -> bool:
    """Test or lab tooling of the repository; gossipha/lab itself is the `demo` command's
    package (in the wheel too) and ships. The dependencies' modules ship as published
    (pyroute2 has a netns module)."""
    if "/site-packages/" in path and "/site-packages/gossipha/" not in f"{path}/":
        return False
    parts = path.split("/")
    if NOT_SHIPPED & set(parts):
        return True
    return "lab" in parts and "site-packages/gossipha/lab" not in path


@pytest.fixture
def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LEAKY_ENV} | {
        "DEBIAN_FRONTEND": "noninteractive"
    }


@pytest.fixture
def purged(env: dict[str, str]) -> Iterator[None]:
    """The package is not installed before the test, and is purged after it however it ends."""
    if installed(env):
        cannot_run("gossipha is installed on this machine already; the test would remove it")
    try:
        yield
    finally:
        if installed(env) or Path("/usr/lib/gossipha").exists():
            gone = run(["apt-get", "purge", "-y", "-q", "gossipha"], Path("/"), env)
            assert gone.returncode == 0, gone.stdout + gone.stderr


@pytest.mark.registry
def test_deb_builds_installs_runs_and_purges(
    tmp_path: Path, env: dict[str, str], purged: None
) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        cannot_run("not a Debian machine (no apt-get or dpkg-deb)")
    if os.geteuid() != 0:
        cannot_run("needs root: the build installs its build dependencies and the test the .deb")
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, src / name)

    built = run(["bash", "scripts/build-deb.sh"], src, env)
    if built.returncode != 0:
        probe = run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp_path / "p", "click"],
            tmp_path,
            env,
        )
        if probe.returncode != 0:
            cannot_run(f"build-deb.sh failed and PyPI cannot be reached: {probe.stderr[-500:]}")
        pytest.fail(
            f"build-deb.sh exited {built.returncode}:\n{built.stdout[-3000:]}{built.stderr}"
        )
    arch = run(["dpkg", "--print-architecture"], src, env).stdout.strip()
    deb = src / "dist" / f"gossipha_{__version__}_{arch}.deb"
    assert sorted(p.name for p in (src / "dist").iterdir()) == [deb.name]

    paths = contents(deb, env)
    assert paths["usr/bin/gossipha"] == "l"
    assert {"lib/systemd/system/gossipha.service", "usr/lib/systemd/system/gossipha.service"} & set(
        paths
    )
    for name in (
        "usr/share/man/man8/gossipha.8.gz",
        "usr/share/bash-completion/completions/gossipha",
        "usr/share/doc/gossipha/README.md",
        "usr/share/doc/gossipha/docs/quickstart.md",
        "usr/share/doc/gossipha/deploy/systemd/gossipha.service.d/storage.conf",
        *(
            f"usr/share/doc/gossipha/docs/examples/tutorial/{n}/{f}"
            for n in NODES
            for f in TUTORIAL_FILES
        ),
    ):
        assert paths.get(name) == "-", name
    assert paths["usr/share/doc/gossipha/examples"] == "l"
    shipped = {p for p in paths if is_tooling(p)}
    assert not shipped, sorted(shipped)[:20]
    # The private environment's bin/ holds the program and python, no other tool.
    venv_bin = {p.rpartition("/")[2] for p in paths if p.startswith("usr/lib/gossipha/bin/")}
    assert venv_bin == {"gossipha", "python", "python3", "python3.11"}

    done = run(["apt-get", "install", "-y", "-q", f"./dist/{deb.name}"], src, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr

    # From elsewhere, with nothing of the checkout importable: the installed program only.
    home = tmp_path / "home"
    home.mkdir()
    gossipha = "/usr/bin/gossipha"
    version = run([gossipha, "--version"], home, env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"gossipha, version {__version__}"

    # The tutorial's files as installed, set up as the tutorial says (authkeys mode 600),
    # with a resource.d/nginx so the service resolves on a machine without nginx.
    for node, name in (("master", "masternginx"), ("slave", "slavenginx")):
        ha_d = home / node
        shutil.copytree(DOC / "examples" / "tutorial" / node, ha_d)
        (ha_d / "authkeys").chmod(0o600)
        (ha_d / "resource.d").mkdir()
        (ha_d / "resource.d" / "nginx").write_text("#!/bin/sh\nexit 0\n")
        (ha_d / "resource.d" / "nginx").chmod(0o755)
        checked = run([gossipha, "check-config", ha_d, "--node-name", name], home, env)
        assert checked.returncode == 0, checked.stderr
        assert f"node {name}" in checked.stdout

    # man gossipha finds the page; the completion answers from the installed program.
    if shutil.which("man") is None:
        cannot_run("man is not installed (Debian: man-db; scripts/setup.sh installs it)")
    page = run(["man", "-w", "gossipha"], home, env)
    assert page.stdout.strip() == "/usr/share/man/man8/gossipha.8.gz", page.stderr
    completion_env = env | {
        "_GOSSIPHA_COMPLETE": "bash_complete",
        "COMP_WORDS": "gossipha check",
        "COMP_CWORD": "1",
    }
    completed = run([gossipha], home, completion_env)
    assert completed.stdout.split() == ["plain,check-config"], completed.stderr

    # The installed unit as systemd reads it, its Documentation= page included.
    tool = shutil.which("systemd-analyze")
    if tool is None:
        cannot_run("systemd-analyze not installed (install systemd)")
    unit = next(Path(f"/{p}") for p in paths if p.endswith("systemd/system/gossipha.service"))
    verified = run([tool, "verify", unit], home, env)
    assert verified.returncode == 0, verified.stderr
    assert "gossipha.service" not in verified.stderr, verified.stderr

    gone = run(["apt-get", "purge", "-y", "-q", "gossipha"], home, env)
    assert gone.returncode == 0, gone.stderr
    assert not installed(env)
    assert not Path("/usr/lib/gossipha").exists()  # no byte code written at run time
    assert not DOC.exists()
