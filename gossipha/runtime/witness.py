"""What a witness runs: the agent runtime with its links and the core, nothing else.

A witness (corosync-qnetd's role) votes on leases and holds nothing: no VIP, no service,
no ping node, no health check, no respawn. `gossipha witness` checks the node with
`require_witness` and runs `runtime.agent` with `AgentOptions(witness=True)`, which
narrows the configuration with `witness_config` (this module's rules, one place).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gossipha.config.errors import ConfigError
from gossipha.config.load import Loaded, load
from gossipha.config.model import Config, IPAddress, Link, NodeRole


def require_witness(config: Config) -> None:
    """Raise ConfigError unless `config.node_name` is a voting witness."""
    me = config.node(config.node_name)
    if me.role is not NodeRole.WITNESS:
        raise ConfigError(
            config.source,
            None,
            f"{me.name!r} is a member node, not a witness; run `gossipha agent` on it "
            '(a witness is a [nodes.NAME] table with role = "witness")',
        )
    if not config.votes(me.name):
        raise ConfigError(
            config.source,
            None,
            f"witness {me.name!r} has voter = false: it would vote on nothing and hold "
            "nothing; remove `voter = false` or the node",
        )


def witness_links(config: Config) -> tuple[Link, ...]:
    """Links a witness opens: those it has an address on when the config names its
    addresses (a third machine is often on the heartbeat network only, and the members
    send to it only where it has an address); every link when it names none."""
    own = {name for name, _address in config.node(config.node_name).addresses}
    if not own:
        return config.links
    return tuple(link for link in config.links if link.name in own)


def witness_config(config: Config) -> Config:
    """The configuration the witness runtime and core see: its own links only, no ping
    nodes and no respawns. Groups stay, for status (who holds what, as gossiped); the
    core keeps no group state for a witness and never starts one."""
    require_witness(config)
    return dataclasses.replace(config, links=witness_links(config), ping_groups=(), respawns=())


__all__ = ["require_witness", "witness_config", "witness_links"]


def load_witness(
    path: Path,
    node_name: str | None = None,
    *,
    allow_unauthenticated: bool = False,
    host_addresses: frozenset[IPAddress] | None = None,
) -> Loaded:
    """The configuration at `path` for a witness node; ConfigError unless it is one."""
    if path.is_dir():
        raise ConfigError(
            path,
            None,
            "a Heartbeat directory (ha.cf) has no way to name a witness; write a "
            'gossipha.toml with the witness as [nodes.NAME] role = "witness" '
            f"(`gossipha migrate {path}` converts the rest) and pass it to --config",
        )
    loaded = load(
        path,
        node_name,
        allow_unauthenticated=allow_unauthenticated,
        host_addresses=host_addresses,
        allow_witness=True,
    )
    require_witness(loaded.config)
    return loaded
