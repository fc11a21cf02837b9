"""Service names resolve in Heartbeat's order: resource.d, init.d, systemd, explicit OCF."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossipha.config.model import ServiceKind
from gossipha.config.services import ServiceNotFound, ServiceResolver


@pytest.fixture
def resolver(tmp_path: Path) -> ServiceResolver:
    for d in ("resource.d", "init.d", "systemd", "ocf/heartbeat"):
        (tmp_path / d).mkdir(parents=True)
    return ServiceResolver(
        resource_d=tmp_path / "resource.d",
        init_d=tmp_path / "init.d",
        systemd_dirs=(tmp_path / "systemd",),
        ocf_root=tmp_path / "ocf",
    )


def touch(path: Path) -> None:
    path.write_text("#!/bin/sh\n")


def test_order_resource_d_then_init_d_then_systemd(resolver: ServiceResolver) -> None:
    touch(resolver.systemd_dirs[0] / "nginx.service")
    assert resolver.resolve("nginx").kind is ServiceKind.SYSTEMD
    touch(resolver.init_d / "nginx")
    assert resolver.resolve("nginx").kind is ServiceKind.LSB
    touch(resolver.resource_d / "nginx")
    found = resolver.resolve("nginx", ("a", "b"))
    assert found.kind is ServiceKind.RESOURCE_D
    assert found.path == resolver.resource_d / "nginx"
    assert found.args == ("a", "b")


def test_systemd_unit_name(resolver: ServiceResolver) -> None:
    touch(resolver.systemd_dirs[0] / "web.service")
    assert resolver.resolve("web").unit == "web.service"


def test_ocf(resolver: ServiceResolver) -> None:
    touch(resolver.ocf_root / "heartbeat" / "nginx")
    found = resolver.resolve("ocf:heartbeat:nginx", ("configfile=/etc/nginx/nginx.conf",))
    assert found.kind is ServiceKind.OCF
    assert (found.ocf_provider, found.ocf_type) == ("heartbeat", "nginx")


@pytest.mark.parametrize(
    ("name", "args", "words"),
    [
        ("nginx", (), ["not found", "init.d/nginx", "nginx.service"]),
        ("ocf:heartbeat", (), ["ocf:PROVIDER:TYPE"]),
        ("ocf:heartbeat:missing", (), ["not found"]),
        ("ocf:heartbeat:nginx", ("noequals",), ["NAME=VALUE"]),
        ("../etc/passwd", (), ["plain name"]),
    ],
)
def test_not_found_says_where_it_looked(
    resolver: ServiceResolver, name: str, args: tuple[str, ...], words: list[str]
) -> None:
    touch(resolver.ocf_root / "heartbeat" / "nginx")
    with pytest.raises(ServiceNotFound) as err:
        resolver.resolve(name, args)
    for word in words:
        assert word in str(err.value)
