"""The keys a node signs and verifies with, and how strictly it verifies.

Like memberlist's keyring: several keys verify at once, exactly one signs, and a key change is
install -> use -> remove, one step at a time on every node (docs/security.md). A `Keyring` is
immutable; every change returns a new one, so the runtime swaps it in one assignment (SIGHUP)
and a packet is never checked against a half-updated key set.

Turning authentication on in a running cluster takes three modes, one step at a time on every
node, so no two nodes ever reject each other:
ACCEPT_UNSIGNED (send unsigned, accept both) -> SIGN_ACCEPT_BOTH (sign, accept both) -> ENFORCE.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from gossipha.config.model import Auth, AuthKey, AuthMethod


class KeyringError(ValueError):
    """A keyring change that would leave the node unable to sign or to talk (our misuse)."""


class AuthMode(enum.Enum):
    """How strictly incoming packets are checked, and whether outgoing ones are signed."""

    ACCEPT_UNSIGNED = "accept-unsigned"  # send unsigned (CRC32 only); accept unsigned and signed
    SIGN_ACCEPT_BOTH = "sign-accept-both"  # sign with the active key; accept unsigned and signed
    ENFORCE = "enforce"  # sign; accept only packets signed with an installed key

    @property
    def signs(self) -> bool:
        return self is not AuthMode.ACCEPT_UNSIGNED

    @property
    def accepts_unsigned(self) -> bool:
        return self is not AuthMode.ENFORCE


@dataclass(frozen=True, slots=True)
class Keyring:
    """Signing keys by id, the id that signs, and the mode.

    `keys` holds only signing keys (`crc` is not a key: unsigned packets carry key id 0).
    `active` is None only in ACCEPT_UNSIGNED, where nothing is signed.
    """

    keys: tuple[AuthKey, ...]
    active: int | None
    mode: AuthMode = AuthMode.ENFORCE
    _by_id: Mapping[int, AuthKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[int, AuthKey] = {}
        for key in self.keys:
            if key.method is AuthMethod.CRC:
                raise KeyringError(f"key {key.key_id}: crc does not sign; it is not a key")
            if not 1 <= key.key_id <= 255:
                raise KeyringError(f"key id {key.key_id}: expected 1 to 255")
            if key.key_id in by_id:
                raise KeyringError(f"key {key.key_id} is installed twice")
            if not key.secret:
                raise KeyringError(f"key {key.key_id}: empty secret")
            by_id[key.key_id] = key
        if self.active is not None and self.active not in by_id:
            raise KeyringError(f"active key {self.active} is not installed")
        if self.mode.signs and self.active is None:
            raise KeyringError(f"mode {self.mode.value} signs, but no active key is set")
        object.__setattr__(self, "_by_id", by_id)

    @classmethod
    def from_auth(cls, auth: Auth, mode: AuthMode | None = None) -> Keyring:
        """Build from an authkeys file. Without `mode`: ENFORCE, or ACCEPT_UNSIGNED when the
        active key is `crc` and the config allows unauthenticated packets explicitly."""
        keys = tuple(k for k in auth.keys if k.method is not AuthMethod.CRC)
        active_crc = auth.active_key.method is AuthMethod.CRC
        if mode is None:
            if active_crc and not auth.allow_unauthenticated:
                raise KeyringError(
                    f"{auth.path}: active key {auth.active} is crc (no authentication); "
                    "allow unauthenticated packets explicitly or pick a signing key"
                )
            mode = AuthMode.ACCEPT_UNSIGNED if active_crc else AuthMode.ENFORCE
        elif active_crc and mode.signs:
            raise KeyringError(
                f"{auth.path}: mode {mode.value} signs, but active key {auth.active} is crc"
            )
        return cls(keys=keys, active=None if active_crc else auth.active, mode=mode)

    def reload(self, auth: Auth) -> Keyring:
        """The keyring for a re-read authkeys file, same mode; swap it in as one assignment."""
        return Keyring.from_auth(auth, mode=self.mode)

    def key(self, key_id: int) -> AuthKey | None:
        """The installed key with this id, or None (the packet is rejected as unknown_key)."""
        return self._by_id.get(key_id)

    @property
    def signing_key(self) -> AuthKey | None:
        """The key outgoing packets are signed with; None when sending unsigned."""
        if not self.mode.signs or self.active is None:
            return None
        return self._by_id[self.active]

    def weaknesses(self) -> tuple[str, ...]:
        """What the runtime should warn about at start and on reload (legacy methods, and
        accepting unsigned packets), one message each."""
        found = [
            f"key {k.key_id} uses {k.method.value}, kept only for Heartbeat migration; "
            "rotate to sha256 (docs/security.md)"
            for k in self.keys
            if k.method.legacy
        ]
        if self.mode.accepts_unsigned:
            found.append(
                f"auth mode {self.mode.value}: unsigned packets are accepted, so anyone who "
                "can reach the port can forge heartbeats"
            )
        return tuple(found)

    def install(self, key: AuthKey) -> Keyring:
        """Step 1 of a rotation: verify with `key` too; nothing is signed with it yet."""
        existing = self._by_id.get(key.key_id)
        if existing is not None:
            if existing == key:
                return self
            raise KeyringError(
                f"key {key.key_id} is installed with another secret; remove it first"
            )
        return Keyring((*self.keys, key), self.active, self.mode)

    def use(self, key_id: int) -> Keyring:
        """Step 2: sign with an installed key (every peer must have installed it already)."""
        if key_id not in self._by_id:
            raise KeyringError(f"key {key_id} is not installed; install it everywhere first")
        return Keyring(self.keys, key_id, self.mode)

    def remove(self, key_id: int) -> Keyring:
        """Step 3: stop accepting a key (after every peer stopped signing with it)."""
        if key_id == self.active:
            raise KeyringError(f"key {key_id} signs our packets; use another key first")
        if key_id not in self._by_id:
            return self
        return Keyring(tuple(k for k in self.keys if k.key_id != key_id), self.active, self.mode)

    def with_mode(self, mode: AuthMode) -> Keyring:
        """Move one step of the authentication roll-out (or back)."""
        return Keyring(self.keys, self.active, mode)
