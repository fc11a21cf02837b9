"""Rules every configuration must meet, whichever source it came from.

Parsers check syntax and record where each item was written in a `Locations` map;
this module checks meaning (deadtime > keepalive, no overlapping VIPs, ...) once, for
both sources, and reports the file and line the parser recorded.

Location keys: "keepalive", "deadtime", "warntime", "initdead", "deadping",
"ping_interval", "lease", "phi_min_std", "phi_acceptable_pause", "phi_window",
"vip_probe_interval", "vip_probe_count", "failback_delay", "auth", "node:NAME",
"voter:NAME" (a written `voter` key), "link:NAME", "link:NAME:peer:ADDR",
"link:NAME:interface", "link:NAME:port", "ping:NAME", "ping:NAME:interface",
"group:NAME", "resource:GROUP:INDEX", "check:GROUP:INDEX", "respawn:INDEX",
"respawn:INDEX:user", "hook:INDEX" (its path), "hook:INDEX:timeout",
"hook:INDEX:events:INDEX", "node_name". A key not recorded falls back to its parent
("link:hb:port" to "link:hb"), then to the configuration's source without a line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NoReturn

from gossipha.config.errors import Collector, ConfigError, ConfigWarning
from gossipha.config.model import (
    AuthMethod,
    Config,
    IPAddress,
    LinkKind,
    NodeRole,
    ServiceResource,
    VipResource,
)
from gossipha.core.types import MAX_DURATION_S, NoticeKind

Locations = Mapping[str, tuple[Path, int | None]]
_Fail = Callable[[str, str], NoReturn]
_Warn = Callable[[str, str], None]


def where(config: Config, locations: Locations, key: str) -> tuple[Path, int | None]:
    """Where `key` was written, else where its nearest recorded parent key was."""
    while key not in locations and ":" in key:
        key = key.rpartition(":")[0]
    return locations.get(key, (config.source, None))


# Clock-rate bound ceiling: see _check_timings.
MAX_DRIFT_LIMIT = 0.2
# The shortest period a timer may have. The runtime counts a wakeup as late (LoopLag) only
# from 10 ms on (runtime/clock.py LAG_REPORT_S): shorter periods sit inside the loop's
# normal jitter, so `keepalive 0.0001` (10,000 heartbeats a second on every link) could
# only be attempted, never kept, and would spend the CPU the detector needs.
MIN_PERIOD_S = 0.01
# The longest detection or lease timing. A voter's lease reply says how long it is still
# promised (up to a lease), and a peer drops any duration above core/types.MAX_DURATION_S
# as junk; past an hour a heartbeat timing is a unit slip (ms written as s), not a choice.
MAX_TIMING_S = MAX_DURATION_S
# The longest timeout or delay (service actions, hooks, health checks, failback): a day.
# Longer is a unit slip, and a stuck stop would hold its group that long.
MAX_TIMEOUT_S = 86_400.0


def validate(
    config: Config,
    locations: Locations,
    local_addresses: Iterable[IPAddress] = (),
    *,
    allow_witness: bool = False,
) -> list[ConfigWarning]:
    """Raise ConfigErrors with the first broken rule of each kind (timings, nodes, links,
    auth, groups, timeouts, hooks: each check stops at its first, since a later rule of
    the same kind may assume an earlier one); return the warnings otherwise.

    `local_addresses` are this host's own addresses (when known) so a heartbeat link
    that points back at this node is caught even in ha.cf, which names no node addresses.
    `allow_witness`: this node may be a witness (`gossipha witness`); else it must be a member.
    """
    warnings: list[ConfigWarning] = []

    def fail(key: str, message: str) -> NoReturn:
        path, line = where(config, locations, key)
        raise ConfigError(path, line, message, "rule")

    def warn(key: str, message: str) -> None:
        path, line = where(config, locations, key)
        warnings.append(ConfigWarning(path, line, message))

    errors = Collector()
    with errors.attempt():
        _check_timings(config, fail, warn)
    with errors.attempt():
        _check_timing_bounds(config, fail)
    with errors.attempt():
        _check_nodes(config, fail, allow_witness)
    if any(node.name == config.node_name for node in config.nodes):  # config.node() works
        _check_voters(config, warn)
        with errors.attempt():
            _check_links(config, fail, warn, set(local_addresses))
    with errors.attempt():
        _check_auth(config, fail, warn)
    with errors.attempt():
        _check_groups(config, fail)
    with errors.attempt():
        _check_timeouts(config, fail)
    with errors.attempt():
        _check_hook_events(config, fail)
    errors.raise_if_any()
    return warnings


def _check_timings(config: Config, fail: _Fail, warn: _Warn) -> None:
    t = config.timings
    for key, value in (
        ("keepalive", t.keepalive_s),
        ("deadtime", t.deadtime_s),
        ("warntime", t.warntime_s),
        ("ping_interval", t.ping_interval_s),
        ("deadping", t.deadping_s),
        ("lease", t.lease_s),
    ):
        if value <= 0:
            fail(key, f"{key} is {value:g}s; expected a duration greater than 0")
    if t.initdead_s < 0:
        fail("initdead", f"initdead is {t.initdead_s:g}s; expected 0 or more")
    if t.deadtime_s <= t.keepalive_s:
        fail(
            "deadtime",
            f"deadtime {t.deadtime_s:g}s must exceed keepalive {t.keepalive_s:g}s "
            "(a peer would be declared dead between two heartbeats)",
        )
    if t.warntime_s >= t.deadtime_s:
        fail(
            "warntime",
            f"warntime {t.warntime_s:g}s must be less than deadtime {t.deadtime_s:g}s "
            "(the warning would come after the peer is already dead)",
        )
    if t.warntime_s <= t.keepalive_s:
        warn(
            "warntime",
            f"warntime {t.warntime_s:g}s is not above keepalive {t.keepalive_s:g}s: "
            "every late heartbeat will raise a warning",
        )
    if t.deadtime_s < 2 * t.keepalive_s:
        warn(
            "deadtime",
            f"deadtime {t.deadtime_s:g}s is less than two keepalives ({t.keepalive_s:g}s): "
            "one lost heartbeat can declare a live peer dead",
        )
    if t.initdead_s < t.deadtime_s:
        warn(
            "initdead",
            f"initdead {t.initdead_s:g}s is shorter than deadtime {t.deadtime_s:g}s: "
            "a slow peer start may be taken for a dead peer",
        )
    if t.deadping_s <= t.ping_interval_s:
        fail(
            "deadping",
            f"deadping {t.deadping_s:g}s must exceed the ping interval {t.ping_interval_s:g}s",
        )
    if not 0 <= t.max_drift < MAX_DRIFT_LIMIT:
        # The VIP probe's answer counts only within 1.5 probes shrunk by (1-r)/(1+r)
        # (core/node.py PROBE_FRESH_PROBES): from r = 0.2 on that is shorter than the probe
        # itself, so a two-node claim would probe for ever and never start.
        fail(
            "lease",
            f"max_drift {t.max_drift:g} is outside [0, {MAX_DRIFT_LIMIT:g}): from "
            f"{MAX_DRIFT_LIMIT:g} on no VIP probe answer is fresh enough to start on",
        )
    if t.phi_warn >= t.phi_dead:
        fail("deadtime", f"phi_warn {t.phi_warn:g} must be below phi_dead {t.phi_dead:g}")


def _check_timing_bounds(config: Config, fail: _Fail) -> None:
    """Refuse timings no runtime can keep (too short) or no peer accepts (too long)."""
    t = config.timings
    for key, value, low in (
        ("keepalive", t.keepalive_s, MIN_PERIOD_S),
        ("ping_interval", t.ping_interval_s, MIN_PERIOD_S),
        ("lease", t.lease_s, MIN_PERIOD_S),
        ("vip_probe_interval", t.vip_probe_interval_s, MIN_PERIOD_S),
        ("deadtime", t.deadtime_s, 0.0),
        ("warntime", t.warntime_s, 0.0),
        ("initdead", t.initdead_s, 0.0),
        ("deadping", t.deadping_s, 0.0),
        ("phi_acceptable_pause", t.phi_acceptable_pause_s, 0.0),
    ):
        if low and value < low:
            fail(
                key,
                f"{key} is {value:g}s; expected at least {low:g}s (10 ms): a shorter period "
                "is within the event loop's own jitter, so it could not be kept",
            )
        if value > MAX_TIMING_S:
            fail(key, f"{key} is {value:g}s; expected at most {MAX_TIMING_S:g}s (an hour)")
    # The detector divides by the standard deviation and needs two samples (core/detector.py).
    if not 0 < t.phi_min_std_s <= MAX_TIMING_S:
        fail(
            "phi_min_std",
            f"phi_min_std is {t.phi_min_std_s:g}s; expected more than 0 and at most "
            f"{MAX_TIMING_S:g}s",
        )
    if t.phi_window < 2:
        fail("phi_window", f"phi_window is {t.phi_window}; expected 2 or more arrival samples")
    if not 0 <= t.failback_delay_s <= MAX_TIMEOUT_S:
        fail(
            "failback_delay",
            f"failback_delay is {t.failback_delay_s:g}s; expected 0 to {MAX_TIMEOUT_S:g}s (a day)",
        )


def _bounded_timeout(fail: _Fail, key: str, what: str, value: float, low: float = 0.0) -> None:
    if value <= low or value > MAX_TIMEOUT_S:
        fail(
            key,
            f"{what} is {value:g}s; expected more than {low:g}s and at most "
            f"{MAX_TIMEOUT_S:g}s (a day)",
        )


def _check_timeouts(config: Config, fail: _Fail) -> None:
    """Service, health check and hook timeouts: 0 fails every run, a year is a unit slip."""
    for group in config.groups:
        for index, resource in enumerate(group.resources):
            if isinstance(resource, ServiceResource):
                key = f"resource:{group.name}:{index}"
                _bounded_timeout(fail, key, f"service {resource.name} timeout", resource.timeout_s)
        for index, check in enumerate(group.health_checks):
            key = f"check:{group.name}:{index}"
            _bounded_timeout(fail, key, f"check {check.name} timeout", check.timeout_s)
            if not MIN_PERIOD_S <= check.interval_s <= MAX_TIMEOUT_S:
                fail(
                    key,
                    f"check {check.name} interval is {check.interval_s:g}s; expected "
                    f"{MIN_PERIOD_S:g}s to {MAX_TIMEOUT_S:g}s",
                )
    for index, hook in enumerate(config.observe.hooks):
        _bounded_timeout(fail, f"hook:{index}:timeout", "hook timeout", hook.timeout_s)


# What a hook's `events` may name: the notice kinds hooks are run for (observe/alerts.py).
HOOK_EVENTS = tuple(kind.value for kind in NoticeKind)


def _check_hook_events(config: Config, fail: _Fail) -> None:
    """An unknown event name (`peer_wran`) would silently never run its hook."""
    for index, hook in enumerate(config.observe.hooks):
        for j, event in enumerate(hook.events):
            if event not in HOOK_EVENTS:
                close = difflib.get_close_matches(event, HOOK_EVENTS, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                fail(
                    f"hook:{index}:events:{j}",
                    f"hook event {event!r} is not an event; {hint}expected one of: "
                    + ", ".join(HOOK_EVENTS),
                )


def _check_nodes(config: Config, fail: _Fail, allow_witness: bool = False) -> None:
    seen: set[str] = set()
    for node in config.nodes:
        if node.name in seen:
            fail(f"node:{node.name}", f"node {node.name!r} is listed twice")
        seen.add(node.name)
    names = ", ".join(n.name for n in config.nodes) or "none"
    if config.node_name not in seen:
        fail(
            "node_name",
            f"this node {config.node_name!r} is not among the configured nodes ({names}); "
            "expected its `uname -n` in a `node` line, or pass --node-name",
        )
    if config.node(config.node_name).role is NodeRole.WITNESS and not allow_witness:
        fail("node_name", f"{config.node_name!r} is a witness; run `gossipha witness` on it")
    if not config.voters:
        fail("node_name", "no node votes on leases; expected at least one voter")


# Above this many voters the holder's renewals (one per voter every L/16 to L/4) buy no
# safety worth their cost; etcd and Consul recommend 3 or 5, at most 7.
MAX_SENSIBLE_VOTERS = 7


def _check_voters(config: Config, warn: _Warn) -> None:
    """Warn about voter sets that cost more or tolerate less than the odd one below."""
    voters = config.voters
    count = len(voters)
    if not voters:
        return  # _check_nodes failed already
    said = [n for n in config.nodes if n.voter is not None]
    key = f"voter:{said[0].name}" if said else f"node:{voters[0].name}"
    how = "as written" if said else "by the default rule"
    names = ", ".join(n.name for n in voters)
    shown = f"{count} voters ({names})" if count <= 8 else f"{count} voters"
    if count > MAX_SENSIBLE_VOTERS:
        warn(
            key,
            f"{shown} {how}: a claim, and a renewal round left unanswered, asks every voter, "
            f"so lease traffic grows with the count for no safety gained; expected at most "
            f"{MAX_SENSIBLE_VOTERS} "
            "(5 is the default): mark the voters with `voter = true`",
        )
    if count % 2 == 0 and count > 2:
        warn(
            key,
            f"{shown} {how}: an even count survives no more failures than {count - 1} "
            f"(a majority is {count // 2 + 1}) and a split into halves leaves no side a "
            "majority; expected an odd number of voters",
        )
    if count < 3 and len(config.nodes) > count:
        warn(
            key,
            f"only {shown} {how} among {len(config.nodes)} nodes: "
            + (
                "if it is down no node can get a lease"
                if count == 1
                else "a majority is both, so the two-node rules of docs/design.md section 2 "
                "apply (the VIP probe, not a majority, keeps a second holder off)"
            )
            + "; expected 3 or 5 voters",
        )


def _check_links(config: Config, fail: _Fail, warn: _Warn, local: set[IPAddress]) -> None:
    if not config.links:
        fail(
            "node_name",
            "no heartbeat link; expected at least one `ucast`, `bcast` or `mcast`",
        )
    own = dict(config.node(config.node_name).addresses)
    names: set[str] = set()
    for link in config.links:
        key = f"link:{link.name}"
        if link.name in names:
            fail(key, f"link {link.name!r} is defined twice")
        names.add(link.name)
        if not 1 <= link.port <= 65535:
            fail(key, f"port {link.port} is not a UDP port (1-65535)")
        if link.kind is LinkKind.UCAST and not link.peers:
            fail(key, f"ucast link {link.name!r} has no peer address")
        if link.kind is LinkKind.MCAST and (link.group is None or not link.group.is_multicast):
            fail(key, f"mcast link {link.name!r}: {link.group} is not a multicast group")
        mine = {a for a in local} | ({own[link.name]} if link.name in own else set())
        for peer in link.peers:
            if peer in mine:
                fail(
                    f"link:{link.name}:peer:{peer}",
                    f"ucast to {peer}, which is this node's own address; "
                    "expected the PEER's address on this link",
                )
    if len(config.links) == 1 and len(config.nodes) > 1:
        warn(
            f"link:{config.links[0].name}",
            "only one heartbeat link: a cut of it cannot be told from a dead peer; "
            "add a second link (for example over the service network)",
        )


def _check_auth(config: Config, fail: _Fail, warn: _Warn) -> None:
    key = config.auth.active_key
    if key.method is AuthMethod.CRC:
        if not config.auth.allow_unauthenticated:
            fail(
                "auth",
                "auth method crc means NO authentication: anyone on the wire can forge "
                "heartbeats; expected sha256 (run `gossipha keygen`), or allow it explicitly "
                "(`allow_unauthenticated = true` in [auth] of gossipha.toml, or "
                "--allow-unauthenticated)",
            )
        warn("auth", "AUTHENTICATION IS OFF (crc): anyone on the wire can forge heartbeats")
    elif key.method.legacy:
        warn(
            "auth",
            f"auth method {key.method.value} is legacy; sha256 is recommended "
            "(see docs/security.md for a rolling key change)",
        )


def _check_groups(config: Config, fail: _Fail) -> None:
    members = {n.name for n in config.members}
    group_names: set[str] = set()
    vip_owner: dict[IPAddress, str] = {}
    for group in config.groups:
        gkey = f"group:{group.name}"
        if group.name in group_names:
            fail(gkey, f"resource group {group.name!r} is defined twice")
        group_names.add(group.name)
        if not group.resources:
            fail(gkey, f"resource group {group.name!r} has no resources")
        if group.preferred is not None and group.preferred not in members:
            fail(
                gkey,
                f"preferred node {group.preferred!r} is not a member node "
                f"(expected one of: {', '.join(sorted(members))})",
            )
        for node, _prio in group.priorities:
            if node not in members:
                fail(gkey, f"priority for unknown node {node!r}")
        for index, resource in enumerate(group.resources):
            if not isinstance(resource, VipResource):
                continue
            rkey = f"resource:{group.name}:{index}"
            address = resource.address
            if address in vip_owner:
                fail(
                    rkey,
                    f"VIP {address} is already used by group {vip_owner[address]!r}; "
                    "expected each floating address in one place only",
                )
            vip_owner[address] = group.name
