"""Where a service named in a resource group lives, found the way Heartbeat users expect.

Order: `<confdir>/resource.d/NAME`, `/etc/init.d/NAME`, a systemd unit `NAME.service`;
`ocf:PROVIDER:TYPE` names an OCF agent explicitly. Roots are fields so tests can point
them at a temporary tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gossipha.config.model import ServiceKind, ServiceResource

SYSTEMD_DIRS = (
    Path("/etc/systemd/system"),
    Path("/run/systemd/system"),
    Path("/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
)


class ServiceNotFound(LookupError):
    """No script, unit or agent by that name; the message lists where we looked."""


@dataclass(frozen=True, slots=True)
class ServiceResolver:
    resource_d: Path
    init_d: Path = Path("/etc/init.d")
    systemd_dirs: tuple[Path, ...] = SYSTEMD_DIRS
    ocf_root: Path = Path("/usr/lib/ocf/resource.d")

    def resolve(self, name: str, args: tuple[str, ...] = ()) -> ServiceResource:
        """A ServiceResource for `name`, or ServiceNotFound naming every place tried."""
        if name.startswith("ocf:"):
            return self._ocf(name, args)
        if "/" in name or name in ("", ".", ".."):
            raise ServiceNotFound(f"service name {name!r}: expected a plain name")
        script = self.resource_d / name
        if script.is_file():
            return ServiceResource(name, ServiceKind.RESOURCE_D, args, path=script)
        script = self.init_d / name
        if script.is_file():
            return ServiceResource(name, ServiceKind.LSB, args, path=script)
        unit = name if name.endswith((".service", ".target")) else f"{name}.service"
        for directory in self.systemd_dirs:
            if (directory / unit).is_file():
                return ServiceResource(name, ServiceKind.SYSTEMD, args, unit=unit)
        looked = ", ".join(
            [str(self.resource_d / name), str(self.init_d / name)]
            + [str(d / unit) for d in self.systemd_dirs]
        )
        raise ServiceNotFound(
            f"service {name!r} not found; looked for {looked}; "
            "expected a script there, a systemd unit, or ocf:PROVIDER:TYPE"
        )

    def _ocf(self, name: str, args: tuple[str, ...]) -> ServiceResource:
        parts = name.split(":")
        if len(parts) != 3 or not all(parts[1:]):
            raise ServiceNotFound(f"{name!r}: expected ocf:PROVIDER:TYPE, e.g. ocf:heartbeat:nginx")
        _, provider, kind = parts
        for arg in args:
            if "=" not in arg:
                raise ServiceNotFound(f"{name}: OCF parameter {arg!r}; expected NAME=VALUE")
        agent = self.ocf_root / provider / kind
        if not agent.is_file():
            raise ServiceNotFound(
                f"OCF agent {name} not found at {agent}; expected Debian's resource-agents "
                "package or a script there"
            )
        return ServiceResource(
            name, ServiceKind.OCF, args, path=agent, ocf_provider=provider, ocf_type=kind
        )
