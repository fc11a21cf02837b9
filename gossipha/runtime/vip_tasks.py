"""A VIP's network side: probe before a claim, announce after adding, guard while held.

The address itself comes and goes with its group (runtime/groups.py). These tasks talk to
the LAN about it: a probe tells the core whether another host answers for the address
before this node claims it; gratuitous ARP makes switches and peers learn the new owner
(five at once, then one every `reannounce_s`); a watcher re-announces when another host
claims the address and re-adds it when it was removed behind our back while still held.
Failures are logged, never raised: the lease, not the ARP traffic, decides who holds it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gossipha.config.model import ResourceGroup, Timings, VipResource
from gossipha.core.types import NoticeKind
from gossipha.resources import vip
from gossipha.runtime.callbacks import Spawn
from gossipha.runtime.logs import kv

# The agent's logger: its lines keep the name operators and bench/failover.py read.
log = logging.getLogger("gossipha.agent")

ANNOUNCE_COUNT = 5
ANNOUNCE_INTERVAL_S = 0.2


async def probe(g: ResourceGroup, timings: Timings, clock_s: Callable[[], float]) -> bool:
    """Whether another host answered for any of the group's VIPs (logged with its time)."""
    t = timings
    answered = False
    started_s = clock_s()
    # The core trusts a silence only if it is fresh (about count x interval after the
    # ProbeVip): listen one interval after the last probe, not the adapter's default.
    for v in g.vips:
        try:
            mac = await vip.probe(
                v, t.vip_probe_count, t.vip_probe_interval_s, wait_s=t.vip_probe_interval_s
            )
        except vip.VipError as exc:
            log.error(kv("vip probe failed", group=g.name, vip=v.address, error=exc))
            continue
        if mac is not None:
            log.error(kv("vip answered our probe", group=g.name, vip=v.address, mac=mac))
            answered = True
    took_s = clock_s() - started_s
    log.info(kv("vip probed", group=g.name, answered=answered, took_s=f"{took_s:.3f}"))
    return answered


async def announce(v: VipResource, count: int = ANNOUNCE_COUNT) -> None:
    try:
        await vip.announce(v, count, ANNOUNCE_INTERVAL_S)
    except vip.VipError as exc:
        log.warning(kv("vip announce failed", vip=v.address, error=exc))


async def reannounce(v: VipResource, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        await announce(v, 1)


async def watch(v: VipResource, group: str, held: Callable[[], bool], spawn: Spawn) -> None:
    """Answer a foreign claim with announcements; re-add the address if removed while held."""

    def sink(event: vip.VipEvent) -> None:
        if isinstance(event, vip.ForeignClaim):
            log.error(
                kv(
                    NoticeKind.SPLIT_BRAIN_RISK.value,
                    group=group,
                    vip=event.address,
                    mac=event.mac,
                    detail="another host claims our VIP; re-announcing",
                )
            )
            spawn(announce(v), f"announce:{v.address}")
        elif held():
            log.error(
                kv(
                    "vip removed behind our back; re-adding",
                    group=group,
                    vip=event.address,
                )
            )
            spawn(readd(v, held), f"readd:{v.address}")

    try:
        await vip.VipWatcher(v, sink).run()
    except (vip.VipError, OSError) as exc:
        log.warning(kv("vip watcher stopped", vip=v.address, error=exc))


async def readd(v: VipResource, held: Callable[[], bool]) -> None:
    if not held():
        return
    try:
        await vip.add_vip(v)
    except vip.VipError as exc:
        log.error(kv("vip re-add failed", vip=v.address, error=exc))
        return
    await announce(v)
