"""Any Config (typically one read from /etc/ha.d) written as an equivalent gossipha.toml.

The promise, property-tested: `load_toml` of the output, for the same node, gives back a
Config equal to the input apart from `source`. So every value is written explicitly
(timings too: ha.d keeps Heartbeat's values, which differ from the native defaults),
services carry their resolved `kind`, and floats are written so they read back exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gossipha.config.durations import format_duration, parse_duration
from gossipha.config.model import (
    Config,
    HealthCheck,
    HealthCheckKind,
    Link,
    LinkKind,
    NodeRole,
    Resource,
    ServiceKind,
    ServiceResource,
    VipResource,
)
from gossipha.config.native import NATIVE_DEFAULTS, derived_peers, format_key, toml_string


def toml_value(value: object) -> str:
    """A TOML literal for a model value (strings, paths and addresses become strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # e.g. 0.01, 1e-05: both valid TOML and exact
    if isinstance(value, tuple | list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return toml_string(str(value))


def toml_duration(seconds: float) -> str:
    """`"200ms"`, `"2s"` when that reads back exactly; a float of seconds otherwise."""
    try:
        text = format_duration(seconds)
        if parse_duration(text) == seconds:
            return toml_string(text)
    except (ValueError, OverflowError):  # exponents and huge values: durations cannot say it
        pass
    return repr(float(seconds))


def _inline(pairs: Iterable[tuple[str, str]]) -> str:
    """`{ a = 1, b = "x" }` from already formatted values."""
    body = ", ".join(f"{format_key(k)} = {v}" for k, v in pairs)
    return "{ " + body + " }" if body else "{}"


def _comment(text: str) -> str:
    """Text safe inside a `#` comment: control characters are shown escaped."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


class _Out:
    """Lines of the output file; `key` writes `key = value` with a formatted value."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def header(self, text: str) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")
        self.lines.append(text)

    def key(self, key: str, value: str) -> None:
        self.lines.append(f"{format_key(key)} = {value}")

    def comment(self, text: str) -> None:
        self.lines.append(f"# {_comment(text)}")


def config_to_toml(config: Config) -> str:
    """The gossipha.toml equivalent of `config`, for the node it was resolved for."""
    out = _Out()
    out.comment(f"gossipha.toml migrated by `gossipha migrate` from {config.source}")
    out.comment(f"as read for node {config.node_name}. Reference: docs/configuration.md")
    base = config.source if config.source.suffix != ".toml" else config.source.parent
    _cluster(out, config)
    _timings(out, config)
    out.header("[auth]")
    out.key("keyfile", toml_value(_absolute(config.auth.path, base)))
    out.key("allow_unauthenticated", toml_value(config.auth.allow_unauthenticated))
    if config.auth.mode is not None:
        out.key("mode", toml_value(config.auth.mode))
    _nodes(out, config)
    for link in config.links:
        _link(out, config, link)
    for ping in config.ping_groups:
        out.header("[[ping]]")
        out.key("name", toml_value(ping.name))
        out.key("addresses", toml_value(ping.addresses))
        if ping.interface is not None:
            out.key("interface", toml_value(ping.interface))
    for group in config.groups:
        _group(out, group.name, group.preferred, group.priorities, group.resources, base)
        for check in group.health_checks:
            _check(out, check)
    for respawn in config.respawns:
        out.header("[[respawn]]")
        out.key("user", toml_value(respawn.user))
        out.key("command", toml_value(respawn.command))
    _logging(out, config, base)
    _observe(out, config, base)
    return "\n".join(out.lines) + "\n"


def _absolute(path: Path, base: Path) -> Path:
    """Relative paths meant "relative to the source"; the output may live elsewhere."""
    return path if path.is_absolute() else base / path


def _cluster(out: _Out, config: Config) -> None:
    out.header("[cluster]")
    out.key("name", toml_value(config.cluster_name))
    out.key("auto_failback", toml_value(config.auto_failback))
    out.key("failback_delay", toml_duration(config.timings.failback_delay_s))
    out.key("ping_failover", toml_value(config.ping_failover))


def _timings(out: _Out, config: Config) -> None:
    t = config.timings
    out.header("[timings]")
    for key, seconds in (
        ("keepalive", t.keepalive_s),
        ("deadtime", t.deadtime_s),
        ("warntime", t.warntime_s),
        ("initdead", t.initdead_s),
        ("ping_interval", t.ping_interval_s),
        ("deadping", t.deadping_s),
        ("phi_min_std", t.phi_min_std_s),
        ("phi_acceptable_pause", t.phi_acceptable_pause_s),
        ("lease", t.lease_s),
        ("vip_probe_interval", t.vip_probe_interval_s),
    ):
        out.key(key, toml_duration(seconds))
    out.key("phi_warn", toml_value(float(t.phi_warn)))
    out.key("phi_dead", toml_value(float(t.phi_dead)))
    out.key("max_drift", toml_value(float(t.max_drift)))
    out.key("phi_window", toml_value(t.phi_window))
    out.key("vip_probe_count", toml_value(t.vip_probe_count))


def _nodes(out: _Out, config: Config) -> None:
    for node in config.nodes:
        out.header(f"[nodes.{format_key(node.name)}]")
        if node.role is not NodeRole.MEMBER:
            out.key("role", toml_value(node.role.value))
        if node.voter is not None:  # unset: the default rule, which migrates as it is
            out.key("voter", toml_value(node.voter))
        if node.addresses:
            out.key("addresses", _inline((k, toml_value(a)) for k, a in node.addresses))


def _link(out: _Out, config: Config, link: Link) -> None:
    out.header("[[link]]")
    out.key("name", toml_value(link.name))
    out.key("kind", toml_value(link.kind.value))
    out.key("interface", toml_value(link.interface))
    out.key("port", toml_value(link.port))
    if link.kind is LinkKind.UCAST:
        derived = derived_peers(link.name, config.nodes, config.node_name)
        if link.peers != derived or not derived:
            if not derived:
                out.comment(f"peers as seen from {config.node_name}. To share this file")
                out.comment(f"between nodes, give each [nodes.NAME] an address on {link.name!r}")
                out.comment("in `addresses` and remove `peers`.")
            out.key("peers", toml_value(link.peers))
    if link.kind is LinkKind.MCAST:
        if link.group is not None:
            out.key("group", toml_value(link.group))
        out.key("ttl", toml_value(link.ttl))
        out.key("loop", toml_value(link.loop))


def _group(
    out: _Out,
    name: str,
    preferred: str | None,
    priorities: tuple[tuple[str, int], ...],
    resources: tuple[Resource, ...],
    base: Path,
) -> None:
    out.header("[[group]]")
    out.key("name", toml_value(name))
    if preferred is not None:
        out.key("preferred", toml_value(preferred))
    if priorities:
        out.key("priorities", _inline((node, toml_value(p)) for node, p in priorities))
    out.lines.append("resources = [")
    for resource in resources:
        out.lines.append(f"  {_inline(_resource_pairs(resource, base))},")
    out.lines.append("]")


def _resource_pairs(resource: Resource, base: Path) -> list[tuple[str, str]]:
    if isinstance(resource, VipResource):
        vip = str(resource.address)
        if resource.prefix is not None:
            vip += f"/{resource.prefix}"
        pairs = [("vip", toml_value(vip))]
        for key, value in (
            ("interface", resource.interface),
            ("label", resource.label),
            ("broadcast", resource.broadcast),
        ):
            if value is not None:
                pairs.append((key, toml_value(value)))
        return pairs
    return _service_pairs(resource, base)


def _service_pairs(service: ServiceResource, base: Path) -> list[tuple[str, str]]:
    """The service with its resolved kind, so reading it back needs no lookup."""
    pairs = [("service", toml_value(service.name)), ("kind", toml_value(service.kind.value))]
    if service.args:
        pairs.append(("args", toml_value(service.args)))
    kind = service.kind
    if kind in (ServiceKind.RESOURCE_D, ServiceKind.LSB, ServiceKind.OCF) and service.path:
        pairs.append(("path", toml_value(_absolute(service.path, base))))
    if kind is ServiceKind.SYSTEMD and service.unit is not None:
        pairs.append(("unit", toml_value(service.unit)))
    if kind is ServiceKind.OCF:
        for key, value in (("provider", service.ocf_provider), ("type", service.ocf_type)):
            if value is not None:
                pairs.append((key, toml_value(value)))
    if kind is ServiceKind.COMMAND:
        for key, command in (
            ("start", service.start),
            ("stop", service.stop),
            ("status", service.status),
        ):
            if command or key != "status":
                pairs.append((key, toml_value(command)))
    if service.timeout_s != NATIVE_DEFAULTS.service_timeout_s:
        pairs.append(("timeout", toml_duration(service.timeout_s)))
    return pairs


def _check(out: _Out, check: HealthCheck) -> None:
    out.header("[[group.check]]")
    out.key("name", toml_value(check.name))
    out.key("kind", toml_value(check.kind.value))
    out.key("interval", toml_duration(check.interval_s))
    out.key("timeout", toml_duration(check.timeout_s))
    if check.kind is HealthCheckKind.HTTP:
        if check.url is not None:
            out.key("url", toml_value(check.url))
        out.key("expect_status", toml_value(check.expect_status))
        if check.expect_body is not None:
            out.key("expect_body", toml_value(check.expect_body))
    else:
        out.key("command", toml_value(check.command))
    out.key("failures", toml_value(check.failures))
    out.key("max_restarts", toml_value(check.max_restarts))


def _logging(out: _Out, config: Config, base: Path) -> None:
    log = config.logging
    out.header("[logging]")
    for key, path in (("logfile", log.logfile), ("debugfile", log.debugfile)):
        if path is not None:
            out.key(key, toml_value(_absolute(path, base)))
    if log.facility is not None:
        out.key("facility", toml_value(log.facility))
    out.key("debug", toml_value(log.debug))


def _observe(out: _Out, config: Config, base: Path) -> None:
    obs = config.observe
    out.header("[observe]")
    host = f"[{obs.listen_address}]" if ":" in obs.listen_address else obs.listen_address
    out.key("listen", toml_value(f"{host}:{obs.listen_port}"))
    out.key("admin_socket", toml_value(_absolute(obs.admin_socket, base)))
    out.key("max_concurrent_hooks", toml_value(obs.max_concurrent_hooks))
    if obs.alertmanager_url is not None:
        out.key("alertmanager_url", toml_value(obs.alertmanager_url))
    for hook in obs.hooks:
        out.header("[[observe.hook]]")
        out.key("path", toml_value(_absolute(hook.path, base)))
        out.key("events", toml_value(hook.events))
        out.key("timeout", toml_duration(hook.timeout_s))
