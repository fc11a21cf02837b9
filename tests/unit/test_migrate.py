"""migrate: any Config written as TOML reads back (load_toml) as the same Config."""

from __future__ import annotations

import dataclasses
import shutil
import string
import tempfile
import tomllib
from pathlib import Path

from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipha.config.durations import parse_duration
from gossipha.config.heartbeat import load_ha_d
from gossipha.config.migrate import config_to_toml, toml_duration
from gossipha.config.model import (
    AUTH_MODES,
    Auth,
    AuthKey,
    AuthMethod,
    Config,
    HealthCheck,
    HealthCheckKind,
    Hook,
    IPAddress,
    Link,
    LinkKind,
    Logging,
    Node,
    NodeRole,
    Observe,
    PingGroup,
    Resource,
    ResourceGroup,
    Respawn,
    ServiceKind,
    ServiceResource,
    Timings,
    VipResource,
)
from gossipha.config.native import derived_peers, load_toml, toml_string
from gossipha.config.services import ServiceResolver
from gossipha.config.validate import validate

REPO = Path(__file__).resolve().parents[2]

# Non-blank text, control characters, quotes and non-ASCII included: escaping must hold.
text = st.text(min_size=1, max_size=8).filter(lambda s: s.strip() != "")
any_text = st.text(max_size=8)
addresses = st.ip_addresses()
durations = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
numbers = st.floats(allow_nan=False, allow_infinity=False)
segment = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=6,
)
paths = st.lists(segment, min_size=1, max_size=3).map(lambda parts: Path("/", *parts))
words = st.lists(text, min_size=1, max_size=3).map(tuple)


@st.composite
def timings(draw: st.DrawFn) -> Timings:
    return Timings(
        keepalive_s=draw(durations),
        deadtime_s=draw(durations),
        warntime_s=draw(durations),
        initdead_s=draw(durations),
        ping_interval_s=draw(durations),
        deadping_s=draw(durations),
        phi_warn=draw(numbers),
        phi_dead=draw(numbers),
        phi_window=draw(st.integers(1, 10_000)),
        phi_min_std_s=draw(durations),
        phi_acceptable_pause_s=draw(durations),
        lease_s=draw(durations),
        max_drift=draw(numbers),
        vip_probe_count=draw(st.integers(1, 100)),
        vip_probe_interval_s=draw(durations),
        failback_delay_s=draw(durations),
    )


@st.composite
def auths(draw: st.DrawFn) -> Auth:
    ids = sorted(draw(st.sets(st.integers(1, 255), min_size=1, max_size=3)))
    secret = st.text(alphabet=string.ascii_letters + string.digits + "!$%&*+-./:=?@^_~", min_size=1)
    keys = []
    for key_id in ids:
        method = draw(st.sampled_from(AuthMethod))
        value = b"" if method is AuthMethod.CRC else draw(secret).encode()
        keys.append(AuthKey(key_id, method, value))
    active = draw(st.sampled_from(ids))
    crc_active = any(k.key_id == active and k.method is AuthMethod.CRC for k in keys)
    # A mode that signs needs a signing active key (load_toml refuses it otherwise).
    modes = ("accept-unsigned",) if crc_active else AUTH_MODES
    return Auth(
        path=Path("/placeholder"),  # replaced by the test with the file it writes
        active=active,
        keys=tuple(keys),
        allow_unauthenticated=draw(st.booleans()),
        mode=draw(st.none() | st.sampled_from(modes)),
    )


def _link(draw: st.DrawFn, name: str, nodes: tuple[Node, ...], node_name: str) -> Link:
    kind = draw(st.sampled_from(LinkKind))
    link = Link(name, kind, draw(text), port=draw(st.integers(1, 65535)))
    if kind is LinkKind.UCAST:
        derived = derived_peers(name, nodes, node_name)
        peers = derived if draw(st.booleans()) else tuple(draw(st.lists(addresses, max_size=3)))
        return dataclasses.replace(link, peers=peers)
    if kind is LinkKind.MCAST:
        return dataclasses.replace(
            link, group=draw(addresses), ttl=draw(st.integers(1, 255)), loop=draw(st.booleans())
        )
    return link


@st.composite
def services(draw: st.DrawFn) -> ServiceResource:
    kind = draw(st.sampled_from(ServiceKind))
    service = ServiceResource(
        draw(text),
        kind,
        args=tuple(draw(st.lists(text, max_size=3))),
        timeout_s=draw(st.one_of(st.just(30.0), durations)),
    )
    if kind in (ServiceKind.RESOURCE_D, ServiceKind.LSB):
        return dataclasses.replace(service, path=draw(paths))
    if kind is ServiceKind.SYSTEMD:
        return dataclasses.replace(service, unit=draw(text))
    if kind is ServiceKind.OCF:
        return dataclasses.replace(
            service, path=draw(paths), ocf_provider=draw(text), ocf_type=draw(text)
        )
    return dataclasses.replace(
        service,
        start=draw(words),
        stop=draw(words),
        status=draw(st.one_of(st.just(()), words)),
    )


@st.composite
def vips(draw: st.DrawFn) -> VipResource:
    address: IPAddress = draw(addresses)
    return VipResource(
        address,
        prefix=draw(st.none() | st.integers(0, address.max_prefixlen)),
        interface=draw(st.none() | text),
        label=draw(st.none() | text),
        broadcast=draw(st.none() | addresses),
    )


@st.composite
def checks(draw: st.DrawFn) -> HealthCheck:
    kind = draw(st.sampled_from(HealthCheckKind))
    check = HealthCheck(
        draw(text),
        kind,
        interval_s=draw(durations),
        timeout_s=draw(durations),
        failures=draw(st.integers(1, 100)),
        max_restarts=draw(st.integers(0, 100)),
    )
    if kind is HealthCheckKind.HTTP:
        return dataclasses.replace(
            check,
            url=draw(text),
            expect_status=draw(st.integers(100, 599)),
            expect_body=draw(st.none() | any_text),
        )
    return dataclasses.replace(check, command=draw(words))


@st.composite
def groups(draw: st.DrawFn, node_names: list[str]) -> ResourceGroup:
    resource = st.one_of(vips(), services())
    resources: tuple[Resource, ...] = tuple(draw(st.lists(resource, max_size=4)))
    priorities = draw(st.dictionaries(st.sampled_from(node_names) | text, st.integers(-100, 100)))
    return ResourceGroup(
        draw(text),
        resources,
        preferred=draw(st.none() | st.sampled_from(node_names) | text),
        priorities=tuple(priorities.items()),
        health_checks=tuple(draw(st.lists(checks(), max_size=2))),
    )


@st.composite
def observes(draw: st.DrawFn) -> Observe:
    host = draw(addresses.map(str) | st.from_regex(r"[a-z][a-z0-9.-]{0,10}", fullmatch=True))
    hooks = st.builds(
        Hook,
        path=paths,
        events=st.lists(text, max_size=3).map(tuple),
        timeout_s=durations,
    )
    return Observe(
        listen_address=host,
        listen_port=draw(st.integers(1, 65535)),
        admin_socket=draw(paths),
        hooks=tuple(draw(st.lists(hooks, max_size=2))),
        max_concurrent_hooks=draw(st.integers(1, 1024)),
        alertmanager_url=draw(st.none() | text),
    )


@st.composite
def configs(draw: st.DrawFn) -> Config:
    node_names = draw(st.lists(text, min_size=1, max_size=4, unique=True))
    link_names = draw(st.lists(text, min_size=1, max_size=3, unique=True))
    nodes = tuple(
        Node(
            name,
            role=draw(st.sampled_from(NodeRole)),
            voter=draw(st.none() | st.booleans()),
            addresses=tuple(
                draw(st.dictionaries(st.sampled_from(link_names), addresses, max_size=3)).items()
            ),
        )
        for name in node_names
    )
    node_name = draw(st.sampled_from(node_names))
    logging = Logging(
        logfile=draw(st.none() | paths),
        debugfile=draw(st.none() | paths),
        facility=draw(st.none() | text),
        debug=draw(st.integers(0, 255)),
    )
    return Config(
        source=Path("/etc/ha.d"),
        cluster_name=draw(text),
        node_name=node_name,
        nodes=nodes,
        links=tuple(_link(draw, name, nodes, node_name) for name in link_names),
        ping_groups=tuple(
            draw(
                st.lists(
                    st.builds(
                        PingGroup,
                        name=text,
                        addresses=st.lists(addresses, min_size=1, max_size=3).map(tuple),
                        interface=st.none() | text,
                    ),
                    max_size=2,
                )
            )
        ),
        timings=draw(timings()),
        auth=draw(auths()),
        groups=tuple(draw(st.lists(groups(node_names), max_size=2))),
        auto_failback=draw(st.booleans()),
        ping_failover=draw(st.booleans()),
        respawns=tuple(draw(st.lists(st.builds(Respawn, user=text, command=words), max_size=2))),
        logging=logging,
        observe=draw(observes()),
    )


def write_authkeys(path: Path, auth: Auth) -> None:
    """An authkeys file, mode 600, that parse_authkeys reads back as `auth`."""
    lines = [f"auth {auth.active}"]
    for key in auth.keys:
        lines.append(f"{key.key_id} {key.method.value} {key.secret.decode()}".rstrip())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def round_trip(config: Config, directory: Path) -> Config:
    written = directory / "gossipha.toml"
    written.write_text(config_to_toml(config), encoding="utf-8")
    resolver = ServiceResolver(resource_d=directory / "no-resource.d")
    loaded, _, _ = load_toml(written, config.node_name, resolver=resolver)
    return loaded


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HypothesisHealthCheck.too_slow, HypothesisHealthCheck.data_too_large],
)
@given(configs())
def test_any_config_reads_back_equal(config: Config) -> None:
    directory = Path(tempfile.mkdtemp(prefix="gossipha-migrate-"))
    try:
        keyfile = directory / "authkeys"
        config = dataclasses.replace(config, auth=dataclasses.replace(config.auth, path=keyfile))
        write_authkeys(keyfile, config.auth)
        loaded = round_trip(config, directory)
        assert dataclasses.replace(loaded, source=config.source) == config
    finally:
        shutil.rmtree(directory)


@given(st.text())
def test_toml_string_reads_back_exactly(value: str) -> None:
    written = toml_string(value)
    assert tomllib.loads(f"k = {written}")["k"] == value
    assert len(written.splitlines()) == 1  # invisible line breaks are escaped too


@given(durations)
def test_durations_read_back_exactly(seconds: float) -> None:
    value = tomllib.loads(f"k = {toml_duration(seconds)}")["k"]
    assert (parse_duration(value) if isinstance(value, str) else float(value)) == seconds


def test_durations_are_written_the_way_people_write_them() -> None:
    assert toml_duration(0.2) == '"200ms"'
    assert toml_duration(30.0) == '"30s"'
    assert toml_duration(1.5) == '"1500ms"'


def _tutorial(tmp_path: Path, node: str) -> tuple[Config, ServiceResolver]:
    side = "master" if node == "masternginx" else "slave"
    had = tmp_path / "ha.d"
    shutil.copytree(REPO / "docs/examples/tutorial" / side, had)
    (had / "authkeys").chmod(0o600)
    (had / "resource.d").mkdir()
    (had / "resource.d" / "nginx").write_text("#!/bin/sh\n")
    resolver = ServiceResolver(resource_d=had / "resource.d", systemd_dirs=())
    config, _, _ = load_ha_d(had, node, resolver=resolver)
    return config, resolver


def test_tutorial_ha_d_migrates_to_an_equal_valid_native_config(tmp_path: Path) -> None:
    config, resolver = _tutorial(tmp_path, "slavenginx")
    text = config_to_toml(config)
    assert text.startswith(f"# gossipha.toml migrated by `gossipha migrate` from {config.source}")
    assert f'keyfile = "{tmp_path}/ha.d/authkeys"' in text
    assert 'peers = ["192.168.17.50"]' in text  # ha.cf names no node addresses
    assert 'keepalive = "2s"' in text and 'deadtime = "30s"' in text  # Heartbeat's own values
    written = tmp_path / "gossipha.toml"
    written.write_text(text)
    loaded, locations, _ = load_toml(written, "slavenginx", resolver=resolver)
    assert dataclasses.replace(loaded, source=config.source) == config
    validate(loaded, locations)


def test_peers_equal_to_node_addresses_are_left_out_so_one_file_fits_all(tmp_path: Path) -> None:
    config = _native_example(tmp_path, "masternginx")
    text = config_to_toml(config)
    assert "peers =" not in text
    written = tmp_path / "again.toml"
    written.write_text(text)
    for node in ("masternginx", "slavenginx"):
        again, _, _ = load_toml(written, node, resolver=ServiceResolver(tmp_path))
        original = _native_example(tmp_path, node)
        assert dataclasses.replace(again, source=original.source) == original


def _native_example(tmp_path: Path, node: str) -> Config:
    toml = tmp_path / "gossipha.toml"
    if not toml.exists():
        shutil.copy(REPO / "docs/examples/native/gossipha.toml", toml)
        write_authkeys(
            tmp_path / "authkeys", Auth(tmp_path, 1, (AuthKey(1, AuthMethod.SHA256, b"k"),))
        )
        (tmp_path / "resource.d").mkdir()
        (tmp_path / "resource.d" / "nginx").write_text("#!/bin/sh\n")
    config, _, _ = load_toml(toml, node, resolver=ServiceResolver(tmp_path / "resource.d"))
    return config


@settings(max_examples=30, deadline=None, suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(configs())
def test_locations_in_written_files_point_at_the_right_lines(config: Config) -> None:
    directory = Path(tempfile.mkdtemp(prefix="gossipha-migrate-"))
    try:
        keyfile = directory / "authkeys"
        config = dataclasses.replace(config, auth=dataclasses.replace(config.auth, path=keyfile))
        write_authkeys(keyfile, config.auth)
        written = directory / "gossipha.toml"
        written.write_text(config_to_toml(config), encoding="utf-8")
        resolver = ServiceResolver(resource_d=directory)
        _, locations, _ = load_toml(written, config.node_name, resolver=resolver)
        lines = written.read_text(encoding="utf-8").split("\n")  # TOML's lines, not Python's

        def at(key: str) -> str:
            path, line = locations[key]
            assert path == written and line is not None
            return lines[line - 1]

        for node in config.nodes:
            assert at(f"node:{node.name}").startswith("[nodes.")
        for link in config.links:
            assert at(f"link:{link.name}") == "[[link]]"
        for group in config.groups:
            assert at(f"group:{group.name}") == "[[group]]"
            for index, resource in enumerate(group.resources):
                first = "{ vip = " if isinstance(resource, VipResource) else "{ service = "
                assert at(f"resource:{group.name}:{index}").startswith("  " + first)
        assert at("deadtime").startswith("deadtime = ")
    finally:
        shutil.rmtree(directory)
