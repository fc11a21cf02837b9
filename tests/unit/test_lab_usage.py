"""The scale lab's pure parts: /proc parsers, rates between samples, the fleet's files."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from gossipha.config.load import load
from gossipha.lab.fleet import (
    FLEET_VIP,
    VoterLayout,
    fleet_hosts,
    render_fleet_toml,
    status_view,
    voter_count,
    write_fleet,
)
from gossipha.lab.usage import (
    CLOCK_TICKS_PER_S,
    IfaceCounters,
    LinkCounters,
    ProcessUsage,
    UsageError,
    link_rate,
    parse_kb_fields,
    parse_net_dev,
    parse_stat,
    process_rate,
    sample_process,
)

# A real line's shape; the command name holds a space and a ')'.
STAT = (
    "4242 (python -m x) y) S 1 4242 4242 0 -1 4194560 1510 0 0 0 "
    "250 50 7 3 20 0 4 0 123456 45000000 14000 18446744073709551615"
)
NET_DEV = "\n".join(
    [
        "Inter-|   Receive                                                |  Transmit",
        " face |bytes    packets errs drop fifo frame compressed multicast"
        "|bytes    packets errs drop fifo colls carrier compressed",
        "    lo:     100       2    0    0    0     0          0         0"
        "      100       2    0    0    0     0       0          0",
        "  eth0: 123456     789    0    0    0     0          0         0"
        "    65432     321    0    0    0     0       0          0",
        "  eth1:    1000      10    0    0    0     0          0         0"
        "     2000      20    0    0    0     0       0          0",
    ]
)


def test_parse_stat_counts_fields_from_the_last_paren() -> None:
    cpu_s, children_s, threads = parse_stat(STAT)
    assert cpu_s == pytest.approx(300 / CLOCK_TICKS_PER_S)
    assert children_s == pytest.approx(10 / CLOCK_TICKS_PER_S)
    assert threads == 4


@pytest.mark.parametrize("text", ["", "4242 (x S 1 2", "1 (x) S 1 2 3"])
def test_parse_stat_refuses_junk(text: str) -> None:
    with pytest.raises(UsageError):
        parse_stat(text)


def test_parse_kb_fields_in_bytes() -> None:
    text = "Name:\tpython\nVmRSS:\t   58000 kB\nThreads:\t4\nPss:  43000 kB\n"
    assert parse_kb_fields(text) == {"VmRSS": 58000 * 1024, "Pss": 43000 * 1024}


def test_parse_net_dev() -> None:
    counters = parse_net_dev(NET_DEV)
    assert set(counters) == {"lo", "eth0", "eth1"}
    assert counters["eth0"] == IfaceCounters(
        rx_packets=789, tx_packets=321, rx_bytes=123456, tx_bytes=65432
    )


def _usage(at_s: float, cpu_s: float, children_s: float = 0.0, pid: int = 7) -> ProcessUsage:
    return ProcessUsage(pid, at_s, cpu_s, children_s, 50 << 20, 20 << 20, 30 << 20, 40 << 20, 0, 3)


def test_process_rate_is_a_share_of_one_core() -> None:
    rate = process_rate(_usage(10.0, 1.0, 0.5), _usage(70.0, 1.3, 0.56))
    assert rate.elapsed_s == 60.0
    assert rate.cpu_fraction == pytest.approx(0.005)  # 0.5 % of a core
    assert rate.children_cpu_fraction == pytest.approx(0.001)
    assert rate.rss_bytes == 50 << 20 and rate.pss_bytes == 40 << 20


def test_process_rate_refuses_mixed_or_reversed_samples() -> None:
    with pytest.raises(ValueError):
        process_rate(_usage(1.0, 1.0), _usage(2.0, 1.0, pid=8))
    with pytest.raises(ValueError):
        process_rate(_usage(2.0, 1.0), _usage(2.0, 1.0))


def test_link_rate_over_interfaces_in_both_samples() -> None:
    before = LinkCounters(0.0, {"eth0": IfaceCounters(10, 20, 1000, 2000)})
    after = LinkCounters(
        10.0,
        {"eth0": IfaceCounters(110, 70, 11000, 4000), "eth1": IfaceCounters(999, 999, 9, 9)},
    )
    rate = link_rate(before, after)
    assert (rate.rx_pps, rate.tx_pps) == (10.0, 5.0)
    assert (rate.rx_bytes_per_s, rate.tx_bytes_per_s) == (1000.0, 200.0)
    assert after.rx_packets == 110 + 999
    with pytest.raises(ValueError):
        link_rate(after, before)


def test_sample_process_reads_this_process() -> None:
    first = sample_process(os.getpid())
    sum(range(200_000))
    second = sample_process(os.getpid())
    assert second.cpu_s >= first.cpu_s >= 0
    assert 1 << 20 < second.rss_bytes < 4 << 30
    assert second.threads >= 1
    if second.pss_bytes is not None:
        assert 0 < second.pss_bytes <= second.rss_bytes


def test_sample_process_of_a_missing_pid() -> None:
    with pytest.raises(UsageError):
        sample_process(2**22 + 12345)  # above pid_max's default maximum


def test_fleet_hosts_addresses() -> None:
    hosts = fleet_hosts(32)
    assert [h.node for h in hosts][:3] == ["n0", "n1", "n2"]
    svc = {h.iface("eth0").address.ip for h in hosts}
    hb = {h.iface("eth1").address.ip for h in hosts}
    assert len(svc) == len(hb) == 32
    assert FLEET_VIP.ip not in svc
    assert all(a in ipaddress.ip_network("192.168.171.0/24") for a in svc)
    with pytest.raises(ValueError):
        fleet_hosts(0)


@pytest.mark.parametrize("n", [3, 4, 8, 16])
@pytest.mark.parametrize("layout", list(VoterLayout))
def test_fleet_config_loads_with_the_voters_counted(
    tmp_path: Path, n: int, layout: VoterLayout
) -> None:
    hosts = fleet_hosts(n)
    config = write_fleet(tmp_path, hosts, layout)
    assert "[timings]" not in config.read_text()
    me = hosts[-1]
    addresses = frozenset(i.address.ip for i in me.ifaces)
    loaded = load(config, me.node, host_addresses=addresses)
    assert len(loaded.config.voters) == voter_count(n, layout)
    assert len(loaded.config.groups) == 1
    if layout is VoterLayout.FIVE:
        assert [v.name for v in loaded.config.voters] == [
            f"n{i}" for i in range(voter_count(n, layout))
        ]


def test_render_is_one_file_for_every_node() -> None:
    text = render_fleet_toml(fleet_hosts(3), VoterLayout.ALL)
    assert text.count("voter = true") == 3
    assert "voter" not in render_fleet_toml(fleet_hosts(3), VoterLayout.FIVE).split("[nodes", 1)[1]


def test_status_view() -> None:
    doc = {
        "groups": [{"name": "g", "holder": "n3", "epoch": 4}],
        "nodes": [{"state": "self"}, {"state": "alive"}, {"state": "warn"}, {"state": "dead"}],
    }
    assert status_view("n1", doc).holder == "n3"
    assert status_view("n1", doc).alive_peers == 2
    assert status_view("n1", {"groups": []}).holder is None
