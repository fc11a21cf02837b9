"""gossipha.toml: every key read, defaults, and errors that name the file and the line."""

from __future__ import annotations

import ipaddress
import shutil
import tomllib
from pathlib import Path

import pytest

from gossipha.config.errors import ConfigError
from gossipha.config.model import (
    Auth,
    AuthKey,
    AuthMethod,
    Config,
    HealthCheck,
    HealthCheckKind,
    Hook,
    Link,
    LinkKind,
    Logging,
    Node,
    NodeRole,
    Observe,
    PingGroup,
    ResourceGroup,
    Respawn,
    ServiceKind,
    ServiceResource,
    Timings,
    VipResource,
)
from gossipha.config.native import NATIVE_DEFAULTS, KeyLines, load_toml
from gossipha.config.services import ServiceResolver
from gossipha.config.validate import MIN_PERIOD_S, validate
from gossipha.core.types import NoticeKind
from gossipha.runtime.clock import LAG_REPORT_S

REPO = Path(__file__).resolve().parents[2]
ip = ipaddress.ip_address

MINIMAL = """\
[cluster]
name = "c"

[nodes.a]
addresses = { hb = "10.0.0.1", svc = "10.1.0.1" }

[nodes.b]
addresses = { hb = "10.0.0.2", svc = "10.1.0.2" }

[[link]]
name = "hb"
interface = "eth1"

[[link]]
name = "svc"
interface = "eth0"
"""


def _authkeys(directory: Path, line: str = "1 sha256 s3cret") -> Path:
    path = directory / "authkeys"
    path.write_text(f"auth 1\n{line}\n")
    path.chmod(0o600)
    return path


def _resolver(directory: Path) -> ServiceResolver:
    """Lookups confined to the test's directory: resource.d/nginx exists, nothing else."""
    resource_d = directory / "resource.d"
    resource_d.mkdir(exist_ok=True)
    (resource_d / "nginx").write_text("#!/bin/sh\n")
    return ServiceResolver(
        resource_d=resource_d,
        init_d=directory / "init.d",
        systemd_dirs=(directory / "systemd",),
        ocf_root=directory / "ocf",
    )


def _load(
    tmp_path: Path, text: str, node: str = "a"
) -> tuple[Config, dict[str, tuple[Path, int | None]]]:
    path = tmp_path / "gossipha.toml"
    path.write_text(text)
    if not (tmp_path / "authkeys").exists():
        _authkeys(tmp_path)
    config, locations, _ = load_toml(path, node, resolver=_resolver(tmp_path))
    return config, locations


def _error(tmp_path: Path, text: str, node: str = "a") -> tuple[ConfigError, int]:
    """The ConfigError for `text`, and the line marked `# <-` in it (the expected line)."""
    marked = [i for i, line in enumerate(text.splitlines(), start=1) if "# <-" in line]
    assert len(marked) == 1, "mark the line the error must point at with `# <-`"
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text, node)
    return caught.value, marked[0]


# --- defaults --------------------------------------------------------------------------


def test_a_minimal_file_takes_the_native_defaults(tmp_path: Path) -> None:
    config, _ = _load(tmp_path, MINIMAL)
    d = NATIVE_DEFAULTS
    assert config.timings == Timings(
        keepalive_s=0.2,
        deadtime_s=1.0,
        warntime_s=0.5,
        initdead_s=3.0,
        ping_interval_s=0.2,
        deadping_s=1.0,
        phi_warn=d.phi_warn,
        phi_dead=d.phi_dead,
        phi_window=d.phi_window,
        phi_min_std_s=d.phi_min_std_s,
        phi_acceptable_pause_s=d.phi_acceptable_pause_s,
        lease_s=0.6,
        max_drift=d.max_drift,
        vip_probe_count=d.vip_probe_count,
        vip_probe_interval_s=d.vip_probe_interval_s,
        failback_delay_s=5.0,
    )
    assert config.auto_failback is True and config.ping_failover is True
    assert config.auth.path == tmp_path / "authkeys"  # beside the TOML file
    assert [link.port for link in config.links] == [694, 694]
    assert [link.kind for link in config.links] == [LinkKind.UCAST, LinkKind.UCAST]
    assert config.logging == Logging() and config.observe == Observe()


def test_native_defaults_pass_every_shared_rule_without_a_warning(tmp_path: Path) -> None:
    config, locations = _load(tmp_path, MINIMAL)
    assert validate(config, locations) == []


def test_ucast_peers_default_to_the_other_nodes_addresses_on_that_link(tmp_path: Path) -> None:
    text = MINIMAL + '\n[nodes.w]\nrole = "witness"\naddresses = { hb = "10.0.0.3" }\n'
    on_a, _ = _load(tmp_path, text, "a")
    on_b, _ = _load(tmp_path, text, "b")
    assert [link.peers for link in on_a.links] == [
        (ip("10.0.0.2"), ip("10.0.0.3")),
        (ip("10.1.0.2"),),
    ]
    assert [link.peers for link in on_b.links] == [
        (ip("10.0.0.1"), ip("10.0.0.3")),
        (ip("10.1.0.1"),),
    ]


# --- every key -------------------------------------------------------------------------

EVERYTHING = """\
[cluster]
name = "web"
auto_failback = false
failback_delay = "7s"
ping_failover = false

[timings]
keepalive = "100ms"
deadtime = 2
warntime = 0.5
initdead = "10s"
ping_interval = "300ms"
deadping = "3s"
phi_warn = 2
phi_dead = 9.5
phi_window = 50
phi_min_std = "20ms"
phi_acceptable_pause = "100ms"
lease = "1500ms"
max_drift = 0.02
vip_probe_count = 5
vip_probe_interval = "10ms"

[auth]
keyfile = "keys/authkeys"
allow_unauthenticated = true

[nodes."a.example"]
role = "member"
voter = true
addresses = { hb = "fe80::1", m = "10.0.0.1" }

[nodes.q]
role = "witness"
voter = false

[[link]]
name = "hb"
kind = "ucast"
interface = "eth1"
port = 6940
peers = [
  "fe80::2",
  "fe80::3",
]

[[link]]
name = "b"
kind = "bcast"
interface = "eth2"

[[link]]
name = "m"
kind = "mcast"
interface = "eth3"
group = "239.0.0.1"
ttl = 3
loop = true

[[ping]]
name = "routers"
addresses = ["192.0.2.1", "2001:db8::1"]
interface = "eth1"

[[ping]]
addresses = ["192.0.2.9"]

[[group]]
name = "web"
preferred = "a.example"
priorities = { "a.example" = 100, q = -1 }
resources = [
  { vip = "192.0.2.100/24", interface = "eth0", label = "eth0:0", broadcast = "192.0.2.255" },
  { vip = "2001:db8::100" },
  { service = "nginx", args = ["x"], timeout = "5s" },
  { service = "app", kind = "command", start = ["/a", "up"], stop = ["/a", "dn"], status = ["/a"] },
  { service = "ocf:heartbeat:nginx", kind = "ocf", args = ["configfile=/etc/nginx.conf"] },
  { service = "old", kind = "lsb" },
  { service = "mine", kind = "resource.d", path = "/opt/mine" },
  { service = "nginx", kind = "systemd" },
]

[[group.check]]
name = "page"
kind = "http"
url = "http://127.0.0.1/"
expect_status = 204
expect_body = "master"
interval = "2s"
timeout = "300ms"
failures = 4
max_restarts = 0

[[group.check]]
name = "script"
kind = "command"
command = ["/bin/check", "-q"]

[[respawn]]
user = "hacluster"
command = ["/usr/lib64/heartbeat/ipfail"]

[logging]
logfile = "/var/log/ha-log"
debugfile = "log/ha-debug"
facility = "local0"
debug = 2

[observe]
listen = "[::1]:9000"
admin_socket = "/run/x.sock"
max_concurrent_hooks = 2
alertmanager_url = "http://am:9093"

[[observe.hook]]
path = "/etc/gossipha/hooks/notify"
events = ["peer_dead"]
timeout = "3s"
"""


def test_every_key_is_read_into_the_model(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    keyfile = tmp_path / "keys" / "authkeys"
    keyfile.write_text("auth 2\n1 crc\n2 sha256 abc\n")
    keyfile.chmod(0o600)
    _authkeys(tmp_path)
    config, _ = _load(tmp_path, EVERYTHING, "a.example")
    expected = Config(
        source=tmp_path / "gossipha.toml",
        cluster_name="web",
        node_name="a.example",
        nodes=(
            Node(
                "a.example", NodeRole.MEMBER, True, (("hb", ip("fe80::1")), ("m", ip("10.0.0.1")))
            ),
            Node("q", NodeRole.WITNESS, False),
        ),
        links=(
            Link("hb", LinkKind.UCAST, "eth1", 6940, (ip("fe80::2"), ip("fe80::3"))),
            Link("b", LinkKind.BCAST, "eth2"),
            Link("m", LinkKind.MCAST, "eth3", group=ip("239.0.0.1"), ttl=3, loop=True),
        ),
        ping_groups=(
            PingGroup("routers", (ip("192.0.2.1"), ip("2001:db8::1")), "eth1"),
            PingGroup("192.0.2.9", (ip("192.0.2.9"),)),
        ),
        timings=Timings(
            keepalive_s=0.1,
            deadtime_s=2.0,
            warntime_s=0.5,
            initdead_s=10.0,
            ping_interval_s=0.3,
            deadping_s=3.0,
            phi_warn=2.0,
            phi_dead=9.5,
            phi_window=50,
            phi_min_std_s=0.02,
            phi_acceptable_pause_s=0.1,
            lease_s=1.5,
            max_drift=0.02,
            vip_probe_count=5,
            vip_probe_interval_s=0.01,
            failback_delay_s=7.0,
        ),
        auth=Auth(
            keyfile,
            2,
            (AuthKey(1, AuthMethod.CRC, b""), AuthKey(2, AuthMethod.SHA256, b"abc")),
            allow_unauthenticated=True,
        ),
        groups=(
            ResourceGroup(
                "web",
                (
                    VipResource(ip("192.0.2.100"), 24, "eth0", "eth0:0", ip("192.0.2.255")),
                    VipResource(ip("2001:db8::100")),
                    ServiceResource(
                        "nginx",
                        ServiceKind.RESOURCE_D,
                        ("x",),
                        path=tmp_path / "resource.d" / "nginx",
                        timeout_s=5.0,
                    ),
                    ServiceResource(
                        "app",
                        ServiceKind.COMMAND,
                        start=("/a", "up"),
                        stop=("/a", "dn"),
                        status=("/a",),
                    ),
                    ServiceResource(
                        "ocf:heartbeat:nginx",
                        ServiceKind.OCF,
                        ("configfile=/etc/nginx.conf",),
                        path=tmp_path / "ocf" / "heartbeat" / "nginx",
                        ocf_provider="heartbeat",
                        ocf_type="nginx",
                    ),
                    ServiceResource("old", ServiceKind.LSB, path=tmp_path / "init.d" / "old"),
                    ServiceResource("mine", ServiceKind.RESOURCE_D, path=Path("/opt/mine")),
                    ServiceResource("nginx", ServiceKind.SYSTEMD, unit="nginx.service"),
                ),
                preferred="a.example",
                priorities=(("a.example", 100), ("q", -1)),
                health_checks=(
                    HealthCheck(
                        "page",
                        HealthCheckKind.HTTP,
                        interval_s=2.0,
                        timeout_s=0.3,
                        url="http://127.0.0.1/",
                        expect_status=204,
                        expect_body="master",
                        failures=4,
                        max_restarts=0,
                    ),
                    HealthCheck("script", HealthCheckKind.COMMAND, command=("/bin/check", "-q")),
                ),
            ),
        ),
        auto_failback=False,
        ping_failover=False,
        respawns=(Respawn("hacluster", ("/usr/lib64/heartbeat/ipfail",)),),
        logging=Logging(Path("/var/log/ha-log"), tmp_path / "log" / "ha-debug", "local0", 2),
        observe=Observe(
            "::1",
            9000,
            Path("/run/x.sock"),
            (Hook(Path("/etc/gossipha/hooks/notify"), ("peer_dead",), 3.0),),
            2,
            "http://am:9093",
        ),
    )
    assert config == expected


# --- errors name the file and the line -------------------------------------------------

ERRORS = [
    pytest.param(
        MINIMAL + '[timings]\ndeadtme = "1s"  # <-\n',
        ["timings.deadtme", "unknown key 'deadtme'", "deadtime", "keepalive"],
        id="typo-in-key",
    ),
    pytest.param(
        MINIMAL + "[clutser]  # <-\n",
        ["unknown key 'clutser'", "cluster, timings"],
        id="typo-in-table",
    ),
    pytest.param(
        MINIMAL + "[timings]\nkeepalive = true  # <-\n",
        ["timings.keepalive", "found a boolean (true)", "expected a duration"],
        id="wrong-type",
    ),
    pytest.param(
        MINIMAL + '[timings]\ndeadtime = "1 minute"  # <-\n',
        ["timings.deadtime", "'1 minute' is not a duration"],
        id="bad-duration",
    ),
    pytest.param(
        MINIMAL + "[timings]\ninitdead = -1  # <-\n",
        ["timings.initdead", "0 seconds or more"],
        id="negative-duration",
    ),
    pytest.param(
        MINIMAL.replace(
            'hb = "10.0.0.2", svc = "10.1.0.2" }', 'hb = "10.0.0.300", svc = "10.1.0.2" }  # <-'
        ),
        ["nodes.b.addresses.hb", "'10.0.0.300' is not an IPv4 or IPv6 address"],
        id="bad-address",
    ),
    pytest.param(
        MINIMAL.replace('svc = "10.1.0.2" }', 'sv = "10.1.0.2" }  # <-'),
        ["no link named 'sv'", "hb, svc"],
        id="address-on-unknown-link",
    ),
    pytest.param(
        MINIMAL + '[auth]\nkeyfile = "/nonexistent/authkeys"  # <-\n',
        ["auth.keyfile", "/nonexistent/authkeys not found", "gossipha keygen"],
        id="missing-keyfile",
    ),
    pytest.param(
        MINIMAL + "[timings]\nkeepalive = = 2  # <-\n",
        ["TOML syntax error"],
        id="syntax-error",
    ),
    pytest.param(
        MINIMAL + '[[group]]\nname = "g"\nresources = [\n  { vip = "10.9.0.1/24" },\n'
        '  { service = "apache" },  # <-\n]\n',
        ["group[0].resources[1]", "service 'apache' not found"],
        id="service-not-found",
    ),
    pytest.param(
        MINIMAL + '[[group]]\nname = "g"\nresources = [{ vip = "10.9.0.1/33" }]  # <-\n',
        ["prefix '33'; expected 0 to 32"],
        id="vip-prefix",
    ),
    pytest.param(
        MINIMAL + '[[group]]\nname = "g"\nresources = [{ vip = "10.9.0.1/２４" }]  # <-\n',
        ["prefix '２４'; expected 0 to 32"],
        id="vip-prefix-full-width",
    ),
    pytest.param(
        MINIMAL + '[timings]\nkeepalive = "２s"  # <-\n',
        ["timings.keepalive", "'２s' is not a duration"],
        id="full-width-duration",
    ),
    pytest.param(
        MINIMAL + '[observe]\nlisten = "127.0.0.1:９６９４"  # <-\n',
        ["expected HOST:PORT"],
        id="full-width-listen-port",
    ),
    pytest.param(
        MINIMAL + '[[group]]\nname = "g"\nresources = [\n'
        '  { service = "nginx", kind = "systemd", start = ["x"] },  # <-\n]\n',
        ["kind 'systemd' does not take 'start'"],
        id="key-of-another-service-kind",
    ),
    pytest.param(
        MINIMAL + '[[link]]\nname = "x"\nkind = "bcast"\ninterface = "eth9"\n'
        'peers = ["10.0.0.9"]  # <-\n',
        ["link[2].peers", "only a ucast link takes 'peers'"],
        id="peers-on-bcast",
    ),
    pytest.param(
        MINIMAL + '[[link]]\nname = "x"\nkind = "multicast"  # <-\ninterface = "eth9"\n',
        ["'multicast'; expected one of: ucast, bcast, mcast"],
        id="link-kind",
    ),
    pytest.param(
        MINIMAL + '[observe]\nlisten = "::1:9694"  # <-\n',
        ["brackets"],
        id="ipv6-listen-without-brackets",
    ),
    pytest.param(
        MINIMAL + '[[respawn]]\nuser = "hacluster"\ncommand = "/usr/bin/x"  # <-\n',
        ["respawn[0].command", "found a string ('/usr/bin/x'); expected an array"],
        id="command-as-string",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), ERRORS)
def test_errors_name_the_file_the_line_and_what_was_expected(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    error, line = _error(tmp_path, text)
    assert error.path == tmp_path / "gossipha.toml"
    assert error.line == line
    for fragment in fragments:
        assert fragment in error.message


def test_a_missing_cluster_name_is_refused_at_the_cluster_table(tmp_path: Path) -> None:
    error, line = _error(tmp_path, MINIMAL.replace('[cluster]\nname = "c"', "[cluster]  # <-"))
    assert (error.line, error.message) == (
        line,
        "cluster: missing key 'name'; expected the cluster's name, e.g. \"web\"",
    )


def test_keyfile_permissions_are_checked(tmp_path: Path) -> None:
    _authkeys(tmp_path).chmod(0o644)
    with pytest.raises(ConfigError, match="expected 600"):
        _load(tmp_path, MINIMAL)


def test_unauthenticated_keys_need_an_explicit_yes(tmp_path: Path) -> None:
    _authkeys(tmp_path, "1 crc")
    config, locations = _load(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match="NO authentication") as caught:
        validate(config, locations)
    assert (caught.value.path, caught.value.line) == (tmp_path / "authkeys", 1)
    config, locations = _load(tmp_path, MINIMAL + "[auth]\nallow_unauthenticated = true\n")
    assert any("AUTHENTICATION IS OFF" in w.message for w in validate(config, locations))


# --- the shared rules point into the TOML file -----------------------------------------


def test_validate_reports_timing_rules_at_the_toml_line(tmp_path: Path) -> None:
    text = MINIMAL + '[timings]\nkeepalive = "1s"\ndeadtime = "500ms"  # <-\nwarntime = "200ms"\n'
    config, locations = _load(tmp_path, text)
    with pytest.raises(ConfigError, match=r"deadtime 0\.5s must exceed keepalive 1s") as caught:
        validate(config, locations)
    assert caught.value.line == text.splitlines().index('deadtime = "500ms"  # <-') + 1


@pytest.mark.parametrize(("drift", "ok"), [(0.15, True), (0.2, False), (0.4, False)])
def test_max_drift_from_0_2_is_refused(tmp_path: Path, drift: float, ok: bool) -> None:
    """From 0.2 the VIP probe's answer window is shorter than the probe: no two-node claim
    would ever start (found by the swarm, gossipha/sim/swarm.py)."""
    config, locations = _load(tmp_path, MINIMAL + f"[timings]\nmax_drift = {drift}\n")
    if ok:
        validate(config, locations)
        return
    with pytest.raises(ConfigError, match=r"outside \[0, 0\.2\).*no VIP probe answer"):
        validate(config, locations)


BOUNDS = [
    pytest.param('[timings]\nkeepalive = "0.1ms"  # <-\n', "keepalive is 0.0001s", id="keepalive"),
    pytest.param("[timings]\nping_interval = 0.001  # <-\n", "at least 0.01s", id="ping"),
    pytest.param('[timings]\nlease = "1ms"  # <-\n', "lease is 0.001s", id="lease-short"),
    pytest.param(
        '[timings]\nkeepalive = "2s"\ndeadtime = "3s"\ninitdead = "3s"\nwarntime = "2.5s"\n'
        "lease = 7200  # <-\n",
        "expected at most 3600s",
        id="lease-long",
    ),
    pytest.param("[timings]\nvip_probe_interval = 0  # <-\n", "at least 0.01s", id="probe"),
    pytest.param("[timings]\nphi_min_std = 0  # <-\n", "more than 0", id="phi-min-std"),
    pytest.param("[timings]\nphi_window = 1  # <-\n", "2 or more", id="phi-window"),
    pytest.param(
        '[timings]\nphi_acceptable_pause = "2h"  # <-\n',
        "is not a duration",  # no hours in Heartbeat's syntax: refused while parsing
        id="hours",
    ),
    pytest.param(
        "[timings]\nphi_acceptable_pause = 7200.0  # <-\n", "at most 3600s", id="pause-long"
    ),
    pytest.param(
        MINIMAL.replace("[cluster]\n", "[cluster]\nfailback_delay = 1e9  # <-\n"),
        "failback_delay is 1e+09s",
        id="failback",
    ),
    pytest.param(
        '[[group]]\nname = "g"\nresources = [\n  { service = "nginx", timeout = 0 },  # <-\n]\n',
        "service nginx timeout is 0s",
        id="service-timeout",
    ),
    pytest.param(
        '[[group]]\nname = "g"\nresources = [{ service = "nginx" }]\n'
        '[[group.check]]  # <-\nname = "h"\nkind = "command"\ncommand = ["true"]\ninterval = 0\n',
        "check h interval is 0s",
        id="check-interval",
    ),
    pytest.param(
        '[[observe.hook]]\npath = "/bin/true"\ntimeout = 0  # <-\n',
        "hook timeout is 0s",
        id="hook-timeout",
    ),
]


@pytest.mark.parametrize(("extra", "fragment"), BOUNDS)
def test_absurd_timings_are_refused_at_their_line(
    tmp_path: Path, extra: str, fragment: str
) -> None:
    text = extra if extra.startswith("[cluster]") else MINIMAL + extra
    marked = [i for i, line in enumerate(text.splitlines(), start=1) if "# <-" in line]
    try:
        config, locations = _load(tmp_path, text)
        with pytest.raises(ConfigError) as caught:
            validate(config, locations)
        error = caught.value
    except ConfigError as exc:  # refused by the parser already
        error = exc
    assert fragment in error.message
    assert (error.path, error.line) == (tmp_path / "gossipha.toml", marked[0])


def test_hook_event_names_are_checked_at_their_element(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[[observe.hook]]\npath = "/bin/true"\nevents = [\n  "peer_dead",\n'
        '  "peer_wran",  # <-\n]\n'
    )
    config, locations = _load(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        validate(config, locations)
    assert caught.value.line == text.splitlines().index('  "peer_wran",  # <-') + 1
    assert "'peer_wran' is not an event; did you mean 'peer_warn'?" in caught.value.message
    assert "peer_dead, peer_recovered" in caught.value.message


def test_every_notice_kind_is_a_hook_event(tmp_path: Path) -> None:
    events = ", ".join(f'"{kind.value}"' for kind in NoticeKind)
    text = MINIMAL + f'[[observe.hook]]\npath = "/bin/true"\nevents = [{events}]\n'
    config, locations = _load(tmp_path, text)
    validate(config, locations)
    assert config.observe.hooks[0].events == tuple(kind.value for kind in NoticeKind)


def test_the_period_floor_is_the_loops_lag_threshold() -> None:
    """MIN_PERIOD_S is argued from runtime/clock.py: keep the two in step."""
    assert MIN_PERIOD_S == LAG_REPORT_S


def test_validate_reports_a_self_addressed_peer_at_its_array_element(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'name = "hb"\ninterface = "eth1"',
        'name = "hb"\ninterface = "eth1"\npeers = [\n  "10.0.0.2",\n  "10.0.0.1",  # <-\n]',
    )
    config, locations = _load(tmp_path, text)
    with pytest.raises(ConfigError, match="this node's own address") as caught:
        validate(config, locations)
    assert caught.value.line == text.splitlines().index('  "10.0.0.1",  # <-') + 1


def test_validate_reports_a_duplicate_vip_at_the_resource(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[[group]]\nname = "g1"\nresources = [{ vip = "10.9.0.1" }]\n'
        '[[group]]\nname = "g2"\nresources = [\n  { service = "nginx" },\n'
        '  { vip = "10.9.0.1" },  # <-\n]\n'
    )
    config, locations = _load(tmp_path, text)
    with pytest.raises(ConfigError, match="already used by group 'g1'") as caught:
        validate(config, locations)
    assert caught.value.line == text.splitlines().index('  { vip = "10.9.0.1" },  # <-') + 1


# --- the line scanner ------------------------------------------------------------------


def test_key_lines_follow_quotes_comments_and_nested_arrays() -> None:
    text = """\
# a comment with [brackets] and key = "value"
title = "has # and ] and \\" inside"
[nodes."web1.example.com"]
addresses = { hb = "10.0.0.1", svc = "10.1.0.1" }
peers = ["10.0.0.2",
  "10.0.0.3"]
[[group]]
name = 'a'
resources = [
  { vip = "10.0.0.100" }, # [[not.a.header]]
  { service = "x", args = ["a,b", "]"] },
]
[[group.check]]
name = \"\"\"multi
line ] string\"\"\"
[[group]]
name = "b"
[[group.check]]
kind = "http"
[[group.check]]
x.y = 1
"""
    tomllib.loads(text)  # the scanner is only ever given valid TOML
    lines = KeyLines(text).lines
    assert lines[("title",)] == 2
    assert lines[("nodes", "web1.example.com")] == 3
    assert lines[("nodes", "web1.example.com", "addresses", "svc")] == 4
    assert lines[("nodes", "web1.example.com", "peers", 1)] == 6
    assert lines[("group", 0, "resources", 0)] == 10
    assert lines[("group", 0, "resources", 1, "args", 1)] == 11
    assert lines[("group", 0, "check", 0, "name")] == 14
    assert lines[("group", 1, "name")] == 17
    assert lines[("group", 1, "check", 0, "kind")] == 19
    assert lines[("group", 1, "check", 1, "x", "y")] == 21
    assert KeyLines(text).line(("group", 1, "check", 0, "url")) == 18  # nearest written


# --- the shipped examples --------------------------------------------------------------


def _example(
    tmp_path: Path, name: str, node: str
) -> tuple[Config, dict[str, tuple[Path, int | None]]]:
    path = tmp_path / name
    shutil.copy(REPO / "docs/examples/native" / name, path)
    _authkeys(tmp_path)
    config, locations, _ = load_toml(path, node, resolver=_resolver(tmp_path))
    return config, locations


@pytest.mark.parametrize(
    ("node", "peer_hb", "peer_svc"),
    [
        ("masternginx", "192.168.17.51", "192.168.171.51"),
        ("slavenginx", "192.168.17.50", "192.168.171.50"),
    ],
)
def test_the_tutorial_example_serves_both_nodes_from_one_file(
    tmp_path: Path, node: str, peer_hb: str, peer_svc: str
) -> None:
    config, locations = _example(tmp_path, "gossipha.toml", node)
    assert validate(config, locations) == []
    assert [(link.interface, link.peers) for link in config.links] == [
        ("eth1", (ip(peer_hb),)),
        ("eth0", (ip(peer_svc),)),
    ]
    assert config.ping_groups == (PingGroup("gw", (ip("192.168.17.1"),), "eth1"),)
    (group,) = config.groups
    assert group.preferred == "masternginx" and config.auto_failback
    assert group.vips == (VipResource(ip("192.168.171.100"), 24, "eth0", "eth0:0"),)
    assert group.resources[1] == ServiceResource(
        "nginx", ServiceKind.RESOURCE_D, path=tmp_path / "resource.d" / "nginx"
    )


@pytest.mark.parametrize("node", ["web1", "web2"])
def test_the_three_node_example_is_valid_on_each_member(tmp_path: Path, node: str) -> None:
    config, locations = _example(tmp_path, "three-nodes.toml", node)
    assert validate(config, locations) == []
    assert [n.role for n in config.nodes] == [NodeRole.MEMBER, NodeRole.MEMBER, NodeRole.WITNESS]
    assert len(config.voters) == 3
    other = "10.0.17.12" if node == "web1" else "10.0.17.11"
    assert config.links[0].peers == (ip(other), ip("10.0.17.13"))


def test_explicit_kinds_are_taken_as_written_without_a_lookup(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '[[group]]\nname = "g"\n'
        + 'resources = [{ service = "nginx", kind = "systemd", unit = "web.service" }]\n'
    )
    config, _ = _load(tmp_path, text)
    assert config.groups[0].resources == (
        ServiceResource("nginx", ServiceKind.SYSTEMD, unit="web.service"),
    )


def test_a_single_bracket_array_table_is_explained(tmp_path: Path) -> None:
    error, line = _error(tmp_path, MINIMAL + '[ping]  # <-\naddresses = ["10.0.0.254"]\n')
    assert error.line == line
    assert "expected [[ping]] (double brackets)" in error.message
