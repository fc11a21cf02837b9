"""How long a stop of the agent can take with a given configuration: what the systemd unit's
TimeoutStopSec must stay above, so systemd never kills an agent that is still stopping.

A stop (SIGTERM) hands the groups over for up to `--shutdown-timeout`; then every stop
under way finishes, and every group still running is stopped again, one after the other
(runtime/agent.py, runtime/groups.py). A service's stop is bounded by its own `timeout`,
and when it fails its status is asked, within the same timeout; each child process also
takes a start, a kill and a reap (`PROCESS_MARGIN_S`). Respawned programs get SIGTERM, then
SIGKILL. The bound adds all of it up as if every step took its longest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gossipha.child import EXEC_TIMEOUT_S
from gossipha.config.model import ResourceGroup, Respawn, ServiceResource
from gossipha.resources.services import OUTPUT_GRACE_S, REAP_TIMEOUT_S
from gossipha.resources.vip import NETLINK_TIMEOUT_S
from gossipha.runtime.respawn import TERM_WAIT_S

PROCESS_MARGIN_S = EXEC_TIMEOUT_S + REAP_TIMEOUT_S + OUTPUT_GRACE_S
# Closing the links, the status API (2 s) and the hook runner; writing the last log lines.
CLOSING_S = 10.0


def group_stop_bound_s(group: ResourceGroup) -> float:
    """One stop of `group`: each service's stop, then its status if the stop failed; each VIP."""
    total = 0.0
    for res in group.resources:
        if isinstance(res, ServiceResource):
            total += 2 * (res.timeout_s + PROCESS_MARGIN_S)
        else:
            total += NETLINK_TIMEOUT_S
    return total


def stop_bound_s(
    groups: Iterable[ResourceGroup], respawns: Sequence[Respawn], shutdown_timeout_s: float
) -> float:
    """The longest a stop can take of an agent that runs `groups` and `respawns`, in s."""
    stops = sum(group_stop_bound_s(g) for g in groups)
    # the handover, the stops it began finishing, the same groups stopped again on exit
    return shutdown_timeout_s + 2 * stops + 2 * TERM_WAIT_S * len(respawns) + CLOSING_S
