"""The effective configuration as a JSON-ready dict (a scripting contract) and as text.

Fields of `as_dict` are stable: add, never rename. Secrets are never rendered.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from pathlib import Path
from typing import Any

from gossipha.config.model import (
    Auth,
    Config,
    Node,
    NodeRole,
    ResourceGroup,
    ServiceResource,
    Timings,
    VipResource,
)

JSON = dict[str, Any]


def _plain(value: Any) -> Any:
    """Dataclasses, enums, addresses and paths as JSON values; pair-tuples stay lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _timings(t: Timings) -> JSON:
    """Every timing; durations in seconds, named without the `_s` suffix."""
    return {f.name.removesuffix("_s"): getattr(t, f.name) for f in dataclasses.fields(t)}


def _auth(auth: Auth) -> JSON:
    return {
        "path": str(auth.path),
        "method": auth.active_key.method.value,
        "active_key": auth.active,
        "keys": [{"id": k.key_id, "method": k.method.value} for k in auth.keys],
        "allow_unauthenticated": auth.allow_unauthenticated,
    }


def _group(group: ResourceGroup) -> JSON:
    resources: list[JSON] = []
    for r in group.resources:
        if isinstance(r, VipResource):
            resources.append({"type": "vip", **_plain(r)})
        else:
            resources.append({"type": "service", **_plain(r)})
    return {
        "name": group.name,
        "preferred": group.preferred,
        "priorities": dict(group.priorities),
        "resources": resources,
        "vips": [_plain(v) for v in group.vips],
        "services": [r.name for r in group.resources if isinstance(r, ServiceResource)],
        "health_checks": [_plain(h) for h in group.health_checks],
    }


def as_dict(config: Config) -> JSON:
    """The effective configuration for `gossipha check-config --json`.

    A node's `voter` is whether it votes (the resolved set); `voters` lists them in config
    order and `voter_rule` says how they were chosen: "default" or "explicit".
    """
    voting = {n.name for n in config.voters}
    return {
        "source": str(config.source),
        "cluster_name": config.cluster_name,
        "node_name": config.node_name,
        "nodes": [
            {
                "name": n.name,
                "role": n.role.value,
                "voter": n.name in voting,
                "addresses": {link: str(addr) for link, addr in n.addresses},
            }
            for n in config.nodes
        ],
        "voters": [n.name for n in config.voters],
        "voter_rule": "explicit" if config.voters_explicit else "default",
        "links": [_plain(link) for link in config.links],
        "ping_nodes": [_plain(p) for p in config.ping_groups],
        "timings": _timings(config.timings),
        "auto_failback": config.auto_failback,
        "ping_failover": config.ping_failover,
        "auth": _auth(config.auth),
        "groups": [_group(g) for g in config.groups],
        "respawns": [_plain(r) for r in config.respawns],
        "logging": _plain(config.logging),
        "observe": _plain(config.observe),
    }


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _node_label(node: Node) -> str:
    return node.name if node.role is NodeRole.MEMBER else f"{node.name} ({node.role.value})"


def as_text(config: Config) -> str:
    """A short, human summary in the spirit of crm_mon."""
    t = config.timings
    lines = [
        f"cluster {config.cluster_name}  node {config.node_name}  (from {config.source})",
        "nodes: "
        + ", ".join(
            n.name + ("" if n.role.value == "member" else f" ({n.role.value})")
            for n in config.nodes
        ),
        f"voters ({len(config.voters)} of {len(config.nodes)}, "
        f"{'as written' if config.voters_explicit else 'default rule'}): "
        + ", ".join(n.name for n in config.voters),
        f"timings: keepalive {_seconds(t.keepalive_s)}  warntime {_seconds(t.warntime_s)}  "
        f"deadtime {_seconds(t.deadtime_s)}  initdead {_seconds(t.initdead_s)}  "
        f"lease {_seconds(t.lease_s)}",
    ]
    for link in config.links:
        where = ", ".join(str(p) for p in link.peers) or (
            str(link.group) if link.group else "broadcast"
        )
        lines.append(
            f"link {link.name}: {link.kind.value} on {link.interface} to {where} port {link.port}"
        )
    for ping in config.ping_groups:
        lines.append(f"ping {ping.name}: " + ", ".join(str(a) for a in ping.addresses))
    lines.append(
        f"auth: {config.auth.active_key.method.value} key {config.auth.active} ({config.auth.path})"
    )
    lines.append(
        f"auto_failback: {'on' if config.auto_failback else 'off'}  "
        f"ping failover (ipfail): {'on' if config.ping_failover else 'off'}"
    )
    for group in config.groups:
        parts = []
        for r in group.resources:
            if isinstance(r, VipResource):
                prefix = f"/{r.prefix}" if r.prefix is not None else ""
                dev = f" on {r.label or r.interface}" if (r.label or r.interface) else ""
                parts.append(f"VIP {r.address}{prefix}{dev}")
            else:
                parts.append(f"{r.name} ({r.kind.value})")
        placement = (
            f"prefers {group.preferred}"
            if group.preferred
            else "priorities " + ", ".join(f"{n}={p}" for n, p in group.priorities)
        )
        lines.append(f"group {group.name}: {placement}: " + " -> ".join(parts))
    return "\n".join(lines)
