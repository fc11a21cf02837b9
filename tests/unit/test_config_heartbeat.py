"""Heartbeat's /etc/ha.d read by load_ha_d: what a user migrating from Heartbeat would check.

Each accepted directive maps to a model field; each error names the file and the line.
Services resolve against a fake tree in tmp_path, never the machine's own.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossipha.config.errors import ConfigError, ConfigWarning
from gossipha.config.haresources import parse_haresources
from gossipha.config.heartbeat import load_ha_d
from gossipha.config.model import (
    AuthMethod,
    Config,
    LinkKind,
    Respawn,
    ServiceKind,
    ServiceResource,
    VipResource,
)
from gossipha.config.services import ServiceResolver
from gossipha.config.validate import validate

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "examples" / "tutorial"

# A minimal valid ha.cf; test lines are appended after it, so they start at line BASE_LINES + 1.
BASE_HACF = """\
keepalive 2
deadtime 30
warntime 10
initdead 60
udpport 694
ucast eth1 192.168.17.51
auto_failback on
node masternginx
node slavenginx
"""
BASE_LINES = BASE_HACF.count("\n")
NEXT = BASE_LINES + 1
TUTORIAL_HARESOURCES = "masternginx 192.168.171.100/24/eth0:0 nginx\n"
SHA256_KEYS = "auth 1\n1 sha256 0123456789abcdef\n"


@pytest.fixture
def resolver(tmp_path: Path) -> ServiceResolver:
    """Fake service tree: init.d/nginx, resource.d/Filesystem, haproxy.service, OCF nginx."""
    root = tmp_path / "services"
    files = [
        root / "init.d" / "nginx",
        root / "resource.d" / "Filesystem",
        root / "systemd" / "haproxy.service",
        root / "ocf" / "heartbeat" / "nginx",
    ]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
    return ServiceResolver(
        resource_d=root / "resource.d",
        init_d=root / "init.d",
        systemd_dirs=(root / "systemd",),
        ocf_root=root / "ocf",
    )


def write_ha_d(
    tmp_path: Path,
    hacf: str | None = BASE_HACF,
    haresources: str | None = TUTORIAL_HARESOURCES,
    authkeys: str | None = SHA256_KEYS,
) -> Path:
    """An ha.d directory with the given files (None leaves a file out); authkeys mode 600."""
    directory = tmp_path / "ha.d"
    directory.mkdir()
    for name, text in (("ha.cf", hacf), ("haresources", haresources), ("authkeys", authkeys)):
        if text is not None:
            (directory / name).write_text(text, encoding="utf-8")
    if authkeys is not None:
        (directory / "authkeys").chmod(0o600)
    return directory


Loaded = tuple[Config, dict[str, tuple[Path, int | None]], list[ConfigWarning]]


def load(
    tmp_path: Path,
    resolver: ServiceResolver,
    extra: str = "",
    *,
    haresources: str = TUTORIAL_HARESOURCES,
    hacf: str | None = None,
    node: str = "masternginx",
) -> Loaded:
    directory = write_ha_d(
        tmp_path, BASE_HACF + extra if hacf is None else hacf, haresources=haresources
    )
    return load_ha_d(directory, node, resolver=resolver)


def warned(warnings: list[ConfigWarning], text: str, line: int | None) -> bool:
    return any(text in w.message and w.line == line for w in warnings)


# ---------------------------------------------------------------- the tutorial itself


@pytest.mark.parametrize(
    ("side", "node", "peer"),
    [("master", "masternginx", "192.168.17.51"), ("slave", "slavenginx", "192.168.17.50")],
)
def test_tutorial_directory_parses_to_the_expected_model(
    tmp_path: Path, resolver: ServiceResolver, side: str, node: str, peer: str
) -> None:
    directory = tmp_path / side
    shutil.copytree(TUTORIAL / side, directory)
    (directory / "authkeys").chmod(0o600)

    config, locations, warnings = load_ha_d(directory, node, resolver=resolver)

    assert config.source == directory
    assert config.cluster_name == "heartbeat"
    assert config.node_name == node
    assert [n.name for n in config.nodes] == ["masternginx", "slavenginx"]
    (link,) = config.links
    assert (link.name, link.kind, link.interface, link.port) == (
        "eth1",
        LinkKind.UCAST,
        "eth1",
        694,
    )
    assert link.peers == (ipaddress.ip_address(peer),)
    assert [g.addresses for g in config.ping_groups] == [(ipaddress.ip_address("192.168.17.1"),)]
    t = config.timings
    assert (t.keepalive_s, t.deadtime_s, t.warntime_s, t.initdead_s) == (2.0, 30.0, 10.0, 60.0)
    assert (t.ping_interval_s, t.deadping_s) == (2.0, 30.0)
    assert config.auto_failback is True
    assert config.ping_failover is True
    assert config.respawns == ()
    assert (config.auth.active, config.auth.active_key.method) == (3, AuthMethod.MD5)
    assert config.auth.active_key.secret == b"Hello!"
    (group,) = config.groups
    assert group.preferred == "masternginx"
    vip, service = group.resources
    assert vip == VipResource(ipaddress.ip_address("192.168.171.100"), 24, "eth0", "eth0:0")
    assert isinstance(service, ServiceResource)
    assert (service.name, service.kind) == ("nginx", ServiceKind.LSB)
    assert config.logging.logfile == Path("/var/log/ha-log")
    assert config.logging.debugfile == Path("/var/log/ha-debug")
    assert config.logging.facility == "local0"
    assert locations["keepalive"] == (directory / "ha.cf", 4)
    assert locations[f"link:eth1:peer:{peer}"] == (directory / "ha.cf", 9)
    assert locations["auth"] == (directory / "authkeys", 1)
    assert not [w for w in warnings if w.path.name == "ha.cf"]
    # The shared rules accept it; the single link is only a warning.
    assert any("only one heartbeat link" in w.message for w in validate(config, locations))


def test_tutorial_text_with_glued_respawn_is_read_with_a_warning(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    text = (TUTORIAL / "master" / "ha.cf").read_text(encoding="utf-8")
    glued = text.replace("respawn hacluster /usr", "respawn hacluster/usr")
    assert glued != text
    config, _, warnings = load(tmp_path, resolver, hacf=glued)
    assert config.ping_failover is True
    assert config.respawns == ()
    assert warned(warnings, "read 'hacluster/usr/lib64/heartbeat/ipfail' as user", 14)


# ---------------------------------------------------------------- ha.cf: accepted directives

ACCEPTED: list[tuple[str, Callable[[Config], Any], Any]] = [
    ("keepalive 500ms", lambda c: (c.timings.keepalive_s, c.timings.ping_interval_s), (0.5, 0.5)),
    ("deadtime 12s", lambda c: c.timings.deadtime_s, 12.0),
    ("warntime 5", lambda c: c.timings.warntime_s, 5.0),
    ("initdead 90", lambda c: c.timings.initdead_s, 90.0),
    ("deadping 20", lambda c: c.timings.deadping_s, 20.0),
    ("udpport 695", lambda c: [link.port for link in c.links], [695]),
    (
        "ucast eth1 192.168.17.52",
        lambda c: [str(p) for p in c.links[0].peers],
        ["192.168.17.51", "192.168.17.52"],
    ),
    ("ucast eth1 192.168.17.51", lambda c: len(c.links[0].peers), 1),
    ("ucast eth2 fd00::2", lambda c: [str(p) for p in c.links[1].peers], ["fd00::2"]),
    (
        "bcast eth2 eth3",
        lambda c: [(link.name, link.kind) for link in c.links[1:]],
        [("eth2", LinkKind.BCAST), ("eth3", LinkKind.BCAST)],
    ),
    ("udp eth2", lambda c: c.links[1].kind, LinkKind.BCAST),
    ("bcast eth1", lambda c: [link.name for link in c.links], ["ucast-eth1", "bcast-eth1"]),
    (
        "mcast eth2 225.0.0.1 1694 2 1",
        lambda c: (
            c.links[1].kind,
            str(c.links[1].group),
            c.links[1].port,
            c.links[1].ttl,
            c.links[1].loop,
        ),
        (LinkKind.MCAST, "225.0.0.1", 1694, 2, True),
    ),
    (
        "ping 10.0.0.1 10.0.0.2",
        lambda c: [g.name for g in c.ping_groups],
        ["10.0.0.1", "10.0.0.2"],
    ),
    (
        "ping_group gateways 10.0.0.1 10.0.0.2",
        lambda c: [(g.name, len(g.addresses)) for g in c.ping_groups],
        [("gateways", 2)],
    ),
    ("node thirdnode fourthnode", lambda c: len(c.nodes), 4),
    ("node ThirdNode", lambda c: c.nodes[-1].name, "thirdnode"),
    ("crm off", lambda c: c.groups[0].preferred, "masternginx"),
    ("crm no", lambda c: c.groups[0].preferred, "masternginx"),
    ("crm false", lambda c: c.groups[0].preferred, "masternginx"),
    ("debug 3", lambda c: c.logging.debug, 3),
    ("logfacility none", lambda c: c.logging.facility, None),
    ("logfacility daemon", lambda c: c.logging.facility, "daemon"),
    ("logfile /tmp/x.log", lambda c: c.logging.logfile, Path("/tmp/x.log")),
    ("debugfile /tmp/d.log", lambda c: c.logging.debugfile, Path("/tmp/d.log")),
    ("auto_failback off", lambda c: c.auto_failback, False),
    ("nice_failback on", lambda c: c.auto_failback, False),
    ("nice_failback off", lambda c: c.auto_failback, True),
    ("cluster webfarm", lambda c: c.cluster_name, "webfarm"),
    (
        "respawn hacluster /usr/lib/heartbeat/ipfail",
        lambda c: (c.ping_failover, c.respawns),
        (True, ()),
    ),
    (
        "respawn root /usr/bin/monitor -v",
        lambda c: (c.ping_failover, c.respawns),
        (False, (Respawn("root", ("/usr/bin/monitor", "-v")),)),
    ),
    ("use_logd no", lambda c: c.nodes[0].name, "masternginx"),
    ("realtime on", lambda c: c.nodes[0].name, "masternginx"),
    ("apiauth ipfail uid=hacluster", lambda c: c.nodes[0].name, "masternginx"),
    ("compression bz2", lambda c: c.nodes[0].name, "masternginx"),
    ("compression_threshold 2", lambda c: c.nodes[0].name, "masternginx"),
    ("msgfmt netstring", lambda c: c.nodes[0].name, "masternginx"),
    ("traditional_compression false", lambda c: c.nodes[0].name, "masternginx"),
    ("coredumps true", lambda c: c.nodes[0].name, "masternginx"),
    ("rtprio 5", lambda c: c.nodes[0].name, "masternginx"),
    ("uuidfrom nodename", lambda c: c.nodes[0].name, "masternginx"),
    ("autojoin none", lambda c: c.nodes[0].name, "masternginx"),
    ("keepalive 2  # 两秒 trailing comment", lambda c: c.timings.keepalive_s, 2.0),
    ("\t  \n# whole-line comment\nkeepalive\t3", lambda c: c.timings.keepalive_s, 3.0),
]


@pytest.mark.parametrize(("line", "read", "expected"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_directive_sets_the_model(
    tmp_path: Path,
    resolver: ServiceResolver,
    line: str,
    read: Callable[[Config], Any],
    expected: Any,
) -> None:
    config, _, _ = load(tmp_path, resolver, line + "\n")
    assert read(config) == expected


WARNED = [
    ("hopfudge 1", "serial rings"),
    ("watchdog /dev/watchdog", "systemd's watchdog"),
    ("auto_failback legacy", "legacy is read as off"),
    ("nice_failback on", "obsolete"),
    ("use_logd yes", "use_logd is ignored"),
    ("keepalive 1", "repeats line 1"),
    ("ucast eth1 192.168.17.51", "listed twice"),
    ("respawn hacluster/usr/lib/heartbeat/ipfail", "put a space"),
]


@pytest.mark.parametrize(("line", "text"), WARNED, ids=[w[0] for w in WARNED])
def test_accepted_with_a_warning_on_its_line(
    tmp_path: Path, resolver: ServiceResolver, line: str, text: str
) -> None:
    _, _, warnings = load(tmp_path, resolver, line + "\n")
    assert warned(warnings, text, NEXT), warnings


def test_repeated_directive_keeps_the_last_value(tmp_path: Path, resolver: ServiceResolver) -> None:
    config, locations, _ = load(tmp_path, resolver, "keepalive 3\n")
    assert config.timings.keepalive_s == 3.0
    assert locations["keepalive"][1] == NEXT


def test_udpport_after_ucast_applies_to_every_link(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    hacf = "ucast eth1 10.0.0.2\nbcast eth2\nudpport 7000\nnode a b\nauto_failback off\n"
    config, _, _ = load(tmp_path, resolver, hacf=hacf, haresources="a nginx\n", node="a")
    assert [link.port for link in config.links] == [7000, 7000]


def test_heartbeat_defaults_when_timings_are_absent(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    hacf = "ucast eth1 10.0.0.2\nnode a b\n"
    config, locations, warnings = load(tmp_path, resolver, hacf=hacf, haresources="a nginx\n")
    t = config.timings
    assert (t.keepalive_s, t.deadtime_s, t.warntime_s, t.initdead_s, t.deadping_s) == (
        1.0,
        30.0,
        15.0,
        30.0,
        30.0,
    )
    assert [link.port for link in config.links] == [694]
    assert config.auto_failback is False
    assert warned(warnings, "no auto_failback line", None)
    assert config.ping_failover is False
    assert locations["keepalive"][1] is None


@pytest.mark.parametrize(("deadtime", "initdead"), [("5", 12.0), ("8", 16.0), ("20", 20.0)])
def test_initdead_default_follows_heartbeat(
    tmp_path: Path, resolver: ServiceResolver, deadtime: str, initdead: float
) -> None:
    hacf = f"keepalive 1\ndeadtime {deadtime}\nucast eth1 10.0.0.2\nnode a b\n"
    config, locations, _ = load(tmp_path, resolver, hacf=hacf, haresources="a nginx\n")
    assert config.timings.initdead_s == initdead
    assert locations["initdead"][1] == 2  # derived from the deadtime line


def test_node_names_are_lower_cased_as_heartbeat_does(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    hacf = BASE_HACF.replace("node masternginx", "node MasterNginx")
    config, _, _ = load(
        tmp_path, resolver, hacf=hacf, haresources="MASTERNGINX nginx\n", node="MasterNginx"
    )
    assert config.node_name == "masternginx"
    assert config.groups[0].preferred == "masternginx"
    assert [n.name for n in config.nodes] == ["masternginx", "slavenginx"]


def test_crlf_and_undecodable_comment_bytes_parse(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    directory = write_ha_d(tmp_path, hacf=None)
    gbk_comment = "  #日志".encode("gbk")
    data = BASE_HACF.replace("\n", "\r\n").encode() + b"ping 10.0.0.1" + gbk_comment + b"\r\n"
    (directory / "ha.cf").write_bytes(data)
    config, _, _ = load_ha_d(directory, "masternginx", resolver=resolver)
    assert [g.name for g in config.ping_groups] == ["10.0.0.1"]


# ---------------------------------------------------------------- ha.cf: errors with file:line

REJECTED = [
    ("keepalive two", "expected seconds like 2"),
    ("keepalive", "expected one value"),
    ("deadtime 1 2", "expected one value"),
    ("Keepalive 2", "write 'keepalive'"),
    ("keeplive 2", "did you mean 'keepalive'"),
    ("frobnicate 1", "unknown directive 'frobnicate'"),
    ("node masternginx", "already listed on line 8"),
    ("node slavenginx otherhost slavenginx", "already listed on line 9"),
    ("ucast eth1 192.168.17.300", "'192.168.17.300'"),
    ("ucast eth1", "expected `ucast INTERFACE PEER-ADDRESS...`"),
    ("ucast eth1 slavenginx", "does not resolve host names"),
    ("ucast eth1/x 10.0.0.1", "interface name"),
    ("bcast", "expected `bcast INTERFACE...`"),
    ("mcast eth1 225.0.0.1 694", "expected `mcast INTERFACE GROUP PORT TTL LOOP`"),
    ("mcast eth1 225.0.0.1 694 1 2", "expected 0 or 1"),
    ("mcast eth1 225.0.0.1 0 1 0", "UDP port"),
    ("udpport 70000", "UDP port (1-65535)"),
    ("udpport http", "UDP port"),
    # Unicode digits: int() reads "６９４" as 694 and raises on "²"; Heartbeat reads neither.
    ("udpport ６９４", "expected a UDP port"),
    ("udpport ²", "expected a UDP port"),
    ("keepalive ２", "is not a duration"),
    ("deadtime ３0", "is not a duration"),
    ("debug ¹", "from 0 to 255"),
    ("mcast eth1 225.0.0.1 694 ¹ 0", "TTL from 1 to 255"),
    ("baud 19200", "serial links are not supported; use a second network link"),
    ("serial /dev/ttyS0", "serial links are not supported; use a second network link"),
    ("crm on", "crm on means Pacemaker manages resources; gossipha runs haresources itself"),
    ("crm yes", "Pacemaker manages resources"),
    ("crm respawn", "Pacemaker manages resources"),
    ("stonith baytech /etc/ha.d/conf/stonith.baytech", "fences with quorum leases"),
    ("stonith_host * baytech 10.0.0.3 admin pw", "fences with quorum leases"),
    ("autojoin any", "fixed member list"),
    ("auto_failback maybe", "expected on or off"),
    ("nice_failback perhaps", "expected on or off"),
    ("logfacility local9", "expected none or one of"),
    ("debug 300", "from 0 to 255"),
    ("hopfudge many", "from 0 to 255"),
    ("respawn /usr/lib/heartbeat/ipfail", "where the user goes"),
    ("respawn hacluster ipfail", "not a full path"),
    ("respawn hacluster", "no program after user"),
    ("ping gateway", "'gateway'"),
    ("ping 192.168.17.1\nping 192.168.17.1", "already defined on line"),
    ("ping_group gw", "expected `ping_group NAME ADDRESS...`"),
    ("msgfmt xml", "classic or netstring"),
    ("realtime sometimes", "expected on or off"),
    ("failfast hacluster /usr/lib/heartbeat/ccm", "use respawn"),
    ("mcast6 eth1 ff05::1 694 1 0", "mcast6 is not supported"),
]


@pytest.mark.parametrize(("line", "message"), REJECTED, ids=[r[0] for r in REJECTED])
def test_rejected_directive_names_file_and_line(
    tmp_path: Path, resolver: ServiceResolver, line: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, resolver, line + "\n")
    error = info.value
    assert error.path == tmp_path / "ha.d" / "ha.cf"
    assert error.line == BASE_LINES + line.count("\n") + 1
    assert message in error.message
    assert "\n" not in error.render()


# ---------------------------------------------------------------- haresources

ONE_GROUP: list[tuple[str, Any]] = [
    ("192.168.171.100", VipResource(ipaddress.ip_address("192.168.171.100"))),
    ("192.168.171.100/24", VipResource(ipaddress.ip_address("192.168.171.100"), 24)),
    ("192.168.171.100/24/eth0", VipResource(ipaddress.ip_address("192.168.171.100"), 24, "eth0")),
    (
        "192.168.171.100/24/eth0:0",
        VipResource(ipaddress.ip_address("192.168.171.100"), 24, "eth0", "eth0:0"),
    ),
    (
        "192.168.171.100/255.255.255.0/eth0",
        VipResource(ipaddress.ip_address("192.168.171.100"), 24, "eth0"),
    ),
    (
        "IPaddr::192.168.171.100/24/eth0/192.168.171.255",
        VipResource(
            ipaddress.ip_address("192.168.171.100"),
            24,
            "eth0",
            broadcast=ipaddress.ip_address("192.168.171.255"),
        ),
    ),
    (
        "IPaddr2::192.168.171.100/24/eth0:1",
        VipResource(ipaddress.ip_address("192.168.171.100"), 24, "eth0", "eth0:1"),
    ),
    ("2001:db8::100/64/eth0", VipResource(ipaddress.ip_address("2001:db8::100"), 64, "eth0")),
    (
        "IPaddr2::2001:db8::100/64/eth0",
        VipResource(ipaddress.ip_address("2001:db8::100"), 64, "eth0"),
    ),
    (
        "Filesystem::/dev/sdb1::/data::ext4",
        (ServiceKind.RESOURCE_D, "Filesystem", ("/dev/sdb1", "/data", "ext4")),
    ),
    ("nginx", (ServiceKind.LSB, "nginx", ())),
    ("haproxy", (ServiceKind.SYSTEMD, "haproxy", ())),
    ("ocf:heartbeat:nginx::port=80", (ServiceKind.OCF, "ocf:heartbeat:nginx", ("port=80",))),
]


@pytest.mark.parametrize(("resource", "expected"), ONE_GROUP, ids=[g[0] for g in ONE_GROUP])
def test_haresources_resource_forms(
    tmp_path: Path, resolver: ServiceResolver, resource: str, expected: Any
) -> None:
    config, _, _ = load(tmp_path, resolver, haresources=f"masternginx {resource}\n")
    (got,) = config.groups[0].resources
    if isinstance(expected, VipResource):
        assert got == expected
    else:
        assert isinstance(got, ServiceResource)
        assert (got.kind, got.name, got.args) == expected


def test_haresources_groups_continuations_and_comments(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    haresources = (
        "# preferred node, then resources in start order\n"
        "\n"
        "masternginx 192.168.171.100/24/eth0:0 \\\n"
        "    nginx   # the web server\n"
        "slavenginx haproxy\n"
        "slavenginx \\\n"
        "  haproxy\n"
    )
    config, locations, _ = load(tmp_path, resolver, haresources=haresources)
    path = tmp_path / "ha.d" / "haresources"
    assert [(g.name, g.preferred, len(g.resources)) for g in config.groups] == [
        ("192.168.171.100", "masternginx", 2),
        ("haproxy", "slavenginx", 1),
        ("haproxy-2", "slavenginx", 1),
    ]
    assert locations["group:192.168.171.100"] == (path, 3)
    assert locations["resource:192.168.171.100:0"] == (path, 3)
    assert locations["resource:192.168.171.100:1"] == (path, 4)
    assert locations["group:haproxy-2"] == (path, 6)
    assert locations["resource:haproxy-2:0"] == (path, 7)


HARESOURCES_REJECTED = [
    ("masternginx 192.168.171.300/24", "'192.168.171.300'"),
    ("masternginx 192.168.171.100/33", "prefix length from 1 to 32"),
    ("masternginx 2001:db8::1/129/eth0", "prefix length from 1 to 128"),
    ("masternginx 192.168.171.100/0", "prefix length from 1 to 32"),
    ("masternginx 192.168.171.100/２４", "prefix length from 1 to 32"),
    ("masternginx 192.168.171.100/²", "prefix length from 1 to 32"),
    ("masternginx 192.168.171.100/24/eth0/1.2.3.255/x", "at most IP/prefix/interface/broadcast"),
    ("masternginx 192.168.171.100/24/eth0:", "expected an interface such as eth0"),
    ("masternginx 192.168.171.100/24/averyveryverylongiface", "at most 15 characters"),
    ("masternginx 2001:db8::1/64/eth0/2001:db8::ff", "only for IPv4"),
    ("masternginx IPaddr::", "IPaddr needs an address"),
    ("masternginx IPaddr2::nothere/24", "'nothere'"),
    ("masternginx nosuchservice", "service 'nosuchservice' not found"),
    ("masternginx ocf:heartbeat:missing", "OCF agent ocf:heartbeat:missing not found"),
    ("masternginx ocf:heartbeat:nginx::port", "expected NAME=VALUE"),
    ("masternginx", "has no resources"),
    ("192.168.171.100/24 nginx", "expected the preferred node's name"),
]


@pytest.mark.parametrize(
    ("line", "message"), HARESOURCES_REJECTED, ids=[r[0] for r in HARESOURCES_REJECTED]
)
def test_haresources_error_names_file_and_line(
    tmp_path: Path, resolver: ServiceResolver, line: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, resolver, haresources=f"# groups\nslavenginx nginx\n{line}\n")
    assert info.value.path == tmp_path / "ha.d" / "haresources"
    assert info.value.line == 3
    assert message in info.value.message


def test_error_on_a_continued_line_names_that_line(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, resolver, haresources="masternginx 192.168.171.100 \\\n  nosuch\n")
    assert info.value.line == 2


VIP_PARTS = st.tuples(
    st.ip_addresses(),
    st.booleans(),
    st.sampled_from(["eth0", "bond0", "ens3f1"]),
    st.one_of(st.none(), st.integers(0, 99)),
)


@given(VIP_PARTS)
def test_vip_spec_round_trips(parts: tuple[Any, bool, str, int | None]) -> None:
    """Any address written as Heartbeat writes it comes back with the same parts."""
    address, with_prefix, iface, label = parts
    prefix = address.max_prefixlen if with_prefix else None
    name = iface if label is None else f"{iface}:{label}"
    spec = f"{address}/{prefix if prefix else ''}/{name}"
    resolver = ServiceResolver(resource_d=Path("/nonexistent"))
    result = parse_haresources(f"node1 {spec}\n", Path("haresources"), resolver)
    (vip,) = result.groups[0].resources
    assert vip == VipResource(address, prefix, iface, None if label is None else name)


# ---------------------------------------------------------------- files and authkeys


@pytest.mark.parametrize("missing", ["ha.cf", "haresources", "authkeys"])
def test_missing_file_is_named(tmp_path: Path, resolver: ServiceResolver, missing: str) -> None:
    directory = write_ha_d(tmp_path, **{missing.replace(".", ""): None})
    with pytest.raises(ConfigError) as info:
        load_ha_d(directory, "masternginx", resolver=resolver)
    assert info.value.path == directory / missing
    assert "not found" in info.value.message


def test_unknown_auth_index_names_authkeys_line(tmp_path: Path, resolver: ServiceResolver) -> None:
    directory = write_ha_d(tmp_path, authkeys="# keys\nauth 2\n1 sha256 secret\n")
    with pytest.raises(ConfigError) as info:
        load_ha_d(directory, "masternginx", resolver=resolver)
    assert (info.value.path, info.value.line) == (directory / "authkeys", 2)
    assert "undefined key" in info.value.message


def test_crc_is_refused_by_validate_at_the_auth_line(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    directory = write_ha_d(tmp_path, authkeys="\nauth 1\n1 crc\n")
    config, locations, _ = load_ha_d(directory, "masternginx", resolver=resolver)
    with pytest.raises(ConfigError) as info:
        validate(config, locations)
    assert (info.value.path, info.value.line) == (directory / "authkeys", 2)
    allowed, allowed_locations, _ = load_ha_d(
        directory, "masternginx", resolver=resolver, allow_unauthenticated=True
    )
    assert any("AUTHENTICATION IS OFF" in w.message for w in validate(allowed, allowed_locations))


# ---------------------------------------------------------------- validate() names our lines


@pytest.mark.parametrize(
    ("hacf", "file", "line", "message"),
    [
        (BASE_HACF.replace("deadtime 30", "deadtime 2"), "ha.cf", 2, "must exceed keepalive"),
        (BASE_HACF.replace("warntime 10", "warntime 30"), "ha.cf", 3, "warntime 30s must be less"),
        (BASE_HACF.replace("deadping", "x") + "deadping 1\n", "ha.cf", NEXT, "deadping 1s"),
        # 10,000 heartbeats a second: below what the event loop can keep (MIN_PERIOD_S).
        (BASE_HACF.replace("keepalive 2", "keepalive 0.0001"), "ha.cf", 1, "at least 0.01s"),
        (BASE_HACF.replace("keepalive 2", "keepalive 5ms"), "ha.cf", 1, "at least 0.01s"),
        # ms written as s: longer than any duration a peer accepts on the wire.
        (
            BASE_HACF.replace("deadtime 30", "deadtime 30000").replace("initdead 60", "initdead 0"),
            "ha.cf",
            2,
            "deadtime is 30000s; expected at most 3600s",
        ),
    ],
)
def test_validate_timing_errors_point_at_ha_cf_lines(
    tmp_path: Path, resolver: ServiceResolver, hacf: str, file: str, line: int, message: str
) -> None:
    config, locations, _ = load(tmp_path, resolver, hacf=hacf)
    with pytest.raises(ConfigError) as info:
        validate(config, locations)
    assert (info.value.path, info.value.line) == (tmp_path / "ha.d" / file, line)
    assert message in info.value.message


def test_keepalive_at_the_floor_is_accepted(tmp_path: Path, resolver: ServiceResolver) -> None:
    hacf = BASE_HACF.replace("keepalive 2", "keepalive 10ms").replace("warntime 10", "warntime 1")
    config, locations, _ = load(tmp_path, resolver, hacf=hacf)
    validate(config, locations)
    assert config.timings.keepalive_s == 0.01


def test_validate_ucast_to_own_address_points_at_that_line(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    config, locations, _ = load(tmp_path, resolver, "ucast eth2 10.9.9.9\n")
    with pytest.raises(ConfigError) as info:
        validate(config, locations, local_addresses=[ipaddress.ip_address("10.9.9.9")])
    assert (info.value.path.name, info.value.line) == ("ha.cf", NEXT)
    assert "this node's own address" in info.value.message


def test_validate_overlapping_vips_point_at_the_second_haresources_line(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    haresources = "masternginx 192.168.171.100/24 nginx\nslavenginx haproxy 192.168.171.100\n"
    config, locations, _ = load(tmp_path, resolver, haresources=haresources)
    with pytest.raises(ConfigError) as info:
        validate(config, locations)
    assert (info.value.path.name, info.value.line) == ("haresources", 2)
    assert "already used" in info.value.message


def test_validate_unknown_preferred_node_points_at_its_group_line(
    tmp_path: Path, resolver: ServiceResolver
) -> None:
    haresources = "masternginx nginx\n\nmastrnginx 192.168.171.100\n"
    config, locations, _ = load(tmp_path, resolver, haresources=haresources)
    with pytest.raises(ConfigError) as info:
        validate(config, locations)
    assert (info.value.path.name, info.value.line) == ("haresources", 3)
    assert "'mastrnginx' is not a member" in info.value.message


def test_validate_missing_local_node_names_ha_cf(tmp_path: Path, resolver: ServiceResolver) -> None:
    config, locations, _ = load(tmp_path, resolver, node="thirdnode")
    with pytest.raises(ConfigError) as info:
        validate(config, locations)
    assert (info.value.path.name, info.value.line) == ("ha.cf", None)
    assert "'thirdnode'" in info.value.message
