"""Ping nodes as core inputs: the pinger's per-group verdicts become PingResults.

Heartbeat's ipfail: reachability of the ping nodes is this node's evidence that it is not
the isolated one. Group verdicts go to the core and to metrics; single replies only update
the round-trip gauges. A pinger that cannot run (no raw socket, no device) reports every
ping group unreachable rather than ending the agent: unable to ping is unable to prove we
are not the isolated node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gossipha.config.model import PingGroup, Timings
from gossipha.core.types import PingResult
from gossipha.runtime.callbacks import Feed
from gossipha.runtime.icmp import GroupReport, Pinger, PingEvent, PingReport
from gossipha.runtime.logs import kv
from gossipha.runtime.observe_glue import ObserveGlue

# The agent's logger: its lines keep the name operators and bench/failover.py read.
log = logging.getLogger("gossipha.agent")


async def feed_pings(
    ping_groups: tuple[PingGroup, ...],
    timings: Timings,
    *,
    feed: Feed,
    observe: ObserveGlue,
    riders: list[Callable[[float, float], None]] | None = None,
) -> None:
    """Run the pinger until cancelled, feeding each group's reachability to the core.

    While it runs, its `ride` is in `riders` (the agent's heartbeat tick offers it a turn).
    """
    t = timings

    groups_of: dict[str, list[str]] = {}
    for pg in ping_groups:
        for address in pg.addresses:
            groups_of.setdefault(str(address), []).append(pg.name)

    def sink(event: PingEvent) -> None:
        if isinstance(event, GroupReport):
            observe.on_ping(event.group, event.reachable)
            feed(PingResult(event.group, event.reachable))
        elif isinstance(event, PingReport) and event.reachable:
            for name in groups_of.get(str(event.address), ()):
                observe.on_ping(name, True, event.rtt_s)

    pinger = Pinger(
        ping_groups,
        interval_s=t.ping_interval_s,
        deadping_s=t.deadping_s,
        sink=sink,
    )
    if riders is not None:
        riders.append(pinger.ride)
    try:
        try:
            await pinger.run()
        except* OSError as group:
            # Opening the sockets fails with an OSError (except* takes it as a group of
            # one): it must end here, not in the agent's TaskGroup.
            # Unable to ping is unable to prove we are not the isolated node: say so.
            exc = group.exceptions[0]
            log.error(kv("ping nodes unusable; treating them as unreachable", error=exc))
            for pg in ping_groups:
                observe.on_ping(pg.name, False)
                feed(PingResult(pg.name, False))
    finally:
        if riders is not None:
            riders.remove(pinger.ride)
