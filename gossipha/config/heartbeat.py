"""Heartbeat's /etc/ha.d as it is (ha.cf, haresources, authkeys) -> one resolved Config.

Syntax errors and what only a parser can see raise ConfigErrors, every one of all three
files with its file, line and code;
the meaning checks (deadtime > keepalive, overlapping VIPs, ...) are validate.py's, which
the loader runs afterwards with the Locations returned here, so its errors name the
right file and line too.
"""

from __future__ import annotations

from pathlib import Path

from gossipha.config.authkeys import active_line, parse_authkeys
from gossipha.config.errors import Collector, ConfigWarning
from gossipha.config.hacf import Where, read_hacf
from gossipha.config.haresources import read_haresources
from gossipha.config.model import Config
from gossipha.config.services import ServiceResolver

__all__ = ["load_ha_d"]


def load_ha_d(
    directory: Path,
    node_name: str,
    *,
    resolver: ServiceResolver,
    allow_unauthenticated: bool = False,
) -> tuple[Config, dict[str, Where], list[ConfigWarning]]:
    """Read the three files of `directory` for `node_name`; does not run validate().

    Node names are lower-cased, as Heartbeat does for `node` lines and `uname -n`.
    """
    hacf_path = directory / "ha.cf"
    haresources_path = directory / "haresources"
    authkeys_path = directory / "authkeys"
    # All three are read before any error is raised, so one run reports every file's.
    errors = Collector()
    hacf = resources = auth_read = None
    with errors.attempt():
        hacf = read_hacf(hacf_path)
    with errors.attempt():
        resources = read_haresources(haresources_path, resolver)
    with errors.attempt():
        auth_read = parse_authkeys(authkeys_path, allow_unauthenticated=allow_unauthenticated)
    errors.raise_if_any()
    assert hacf is not None and resources is not None and auth_read is not None
    auth, auth_warnings = auth_read
    locations: dict[str, Where] = {
        **hacf.locations,
        **resources.locations,
        "auth": (authkeys_path, active_line(authkeys_path)),
        "node_name": (hacf_path, None),
    }
    config = Config(
        source=directory,
        cluster_name=hacf.cluster_name,
        node_name=node_name.lower(),
        nodes=hacf.nodes,
        links=hacf.links,
        ping_groups=hacf.ping_groups,
        timings=hacf.timings,
        auth=auth,
        groups=resources.groups,
        auto_failback=hacf.auto_failback,
        ping_failover=hacf.ping_failover,
        respawns=hacf.respawns,
        logging=hacf.logging,
    )
    warnings = [*hacf.warnings, *resources.warnings, *auth_warnings]
    voters = config.voters
    if len(voters) < len(config.nodes):
        # The default rule picks by name; each host has its own ha.cf, whose node list
        # must be the same everywhere for the hosts to agree.
        first_out = next(n for n in config.nodes if n not in voters)
        path, line = locations.get(f"node:{first_out.name}", (hacf_path, None))
        warnings.append(
            ConfigWarning(
                path,
                line,
                f"{len(config.nodes)} nodes, so only {len(voters)} vote, chosen by name "
                f"({', '.join(n.name for n in voters)}); expected the same `node` lines in "
                "every node's ha.cf, or the nodes disagree on who votes "
                "(docs/configuration.md, Voters)",
            )
        )
    return config, locations, warnings
