"""One entry point for configuration: a directory is Heartbeat's /etc/ha.d, a file is TOML.

Parsing is the sources' job; meaning is checked once here by `validate` for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from gossipha.config.errors import ConfigError, ConfigErrors, ConfigWarning
from gossipha.config.model import Config, IPAddress, Observe
from gossipha.config.services import ServiceResolver
from gossipha.config.validate import Locations, validate

# Where every command looks when given no configuration path, in this order: the native
# file first (a host that migrated may keep /etc/ha.d around), then Heartbeat's directory.
DEFAULT_SEARCH: tuple[Path, ...] = (Path("/etc/gossipha/gossipha.toml"), Path("/etc/ha.d"))
NATIVE_NAME = "gossipha.toml"
# The rule in one sentence, for each command's --help (docs/configuration.md says more).
DEFAULT_HELP = (
    "[default: /etc/gossipha/gossipha.toml if present, else /etc/ha.d; "
    "a directory holding gossipha.toml and no ha.cf means that file]"
)


def resolve_path(path: Path | None) -> Path:
    """The configuration a command reads: `path`, or with none the first of DEFAULT_SEARCH
    that exists. A directory holding gossipha.toml and no ha.cf means that file; one holding
    both is refused, as either reading could be the wrong one. ConfigError if none is found.
    """
    if path is None:
        found = next((p for p in DEFAULT_SEARCH if p.exists()), None)
        if found is None:
            looked = ", ".join(str(p) for p in DEFAULT_SEARCH)
            raise ConfigError(
                DEFAULT_SEARCH[0],
                None,
                f"no configuration found (looked for {looked}); expected a gossipha.toml "
                "or a Heartbeat directory with ha.cf there, or its path given",
                "not-found",
            )
        path = found
    if path.is_dir() and (path / NATIVE_NAME).is_file():
        if (path / "ha.cf").exists():
            raise ConfigError(
                path,
                None,
                f"holds both ha.cf and {NATIVE_NAME}; expected one of them: give "
                f"{path / NATIVE_NAME} or move it away to read ha.cf",
                "duplicate",
            )
        return path / NATIVE_NAME
    return path


def _no_locations() -> Locations:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Loaded:
    config: Config
    warnings: tuple[ConfigWarning, ...]
    # Where each item was written (validate.py's keys), for checks made after loading.
    locations: Locations = field(default_factory=_no_locations)


def local_node_name() -> str:
    """This host's node name, as Heartbeat finds it (`uname -n`)."""
    return os.uname().nodename


def local_addresses() -> frozenset[IPAddress]:
    """Addresses configured on this host (in this network namespace), for the self-ucast check.

    Read with the agent's own rtnetlink client, so loading a configuration does not import
    pyroute2 (about 9 MB of an agent's resident memory)."""
    from gossipha.resources.rtnl import host_addresses

    return host_addresses()


def load(
    path: Path,
    node_name: str | None = None,
    *,
    allow_unauthenticated: bool = False,
    resolver: ServiceResolver | None = None,
    host_addresses: frozenset[IPAddress] | None = None,
    allow_witness: bool = False,
) -> Loaded:
    """Read, check and return the configuration at `path` for `node_name` (default: uname -n).

    `allow_witness`: the node may be a witness (for `gossipha witness`); by default a
    witness node is refused, since `gossipha agent` would run it as nothing.

    Raises ConfigErrors with every problem found (file, line, code, message): all errors
    of all files the source reads, then, once they read, the first broken rule of each
    kind (validate.py). `check-config` reports them all; the agent does not start.
    """
    # Every path in the model is absolute: migrate writes them out.
    path = resolve_path(Path(path)).absolute()
    name = node_name or local_node_name()
    if path.is_dir():
        from gossipha.config.heartbeat import load_ha_d

        config, locations, warnings = load_ha_d(
            path,
            name,
            resolver=resolver or ServiceResolver(path / "resource.d"),
            allow_unauthenticated=allow_unauthenticated,
        )
    elif path.is_file():
        from gossipha.config.native import load_toml

        config, locations, warnings = load_toml(
            path,
            name,
            resolver=resolver or ServiceResolver(path.parent / "resource.d"),
            allow_unauthenticated=allow_unauthenticated,
        )
    elif path.exists():
        raise ConfigError(
            path, None, "not a file or directory; expected /etc/ha.d or a .toml", "unreadable"
        )
    else:
        raise ConfigError(
            path,
            None,
            "not found; expected a Heartbeat directory (/etc/ha.d) or gossipha.toml",
            "not-found",
        )
    addresses = local_addresses() if host_addresses is None else host_addresses
    warnings = [*warnings, *validate(config, locations, addresses, allow_witness=allow_witness)]
    return Loaded(config, tuple(warnings), MappingProxyType(dict(locations)))


def load_observe(path: Path) -> Observe:
    """Where the agent configured by `path` serves /status, for `gossipha status`.

    Only that part is read: a status check must work for users who cannot read authkeys,
    and after the file was edited under a running agent. ha.cf cannot name an address, so
    an /etc/ha.d gets the defaults once its ha.cf is readable. ConfigError names the file.
    """
    path = resolve_path(Path(path)).absolute()
    if path.is_dir():
        from gossipha.config.hacf import read_hacf_text

        text = read_hacf_text(path / "ha.cf")
        if text.errors:
            raise ConfigErrors(text.errors)
        return Observe()
    if path.is_file():
        from gossipha.config.native import read_observe

        return read_observe(path)
    if path.exists():
        raise ConfigError(
            path, None, "not a file or directory; expected /etc/ha.d or a .toml", "unreadable"
        )
    raise ConfigError(
        path,
        None,
        "not found; expected a Heartbeat directory (/etc/ha.d) or gossipha.toml",
        "not-found",
    )
