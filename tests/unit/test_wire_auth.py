"""HMAC per method, unsigned modes, keyring rules, and rolling key changes with no gap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gossipha.config.authkeys import parse_authkeys
from gossipha.config.model import Auth, AuthKey, AuthMethod
from gossipha.wire import auth
from gossipha.wire.codec import Decoder, Encoder, Packet, cluster_id
from gossipha.wire.keyring import AuthMode, Keyring, KeyringError
from gossipha.wire.reject import Reject, RejectReason

CLUSTER = cluster_id("nginx")
OLD = AuthKey(1, AuthMethod.SHA256, b"old secret")
NEW = AuthKey(2, AuthMethod.SHA512, b"new secret")
SIGNING = [m for m in AuthMethod if m is not AuthMethod.CRC]


class Node:
    """One in-process node: an encoder and a decoder sharing a keyring, as the runtime holds."""

    def __init__(self, name: str, peer: str, keyring: Keyring) -> None:
        self.enc = Encoder(cluster=CLUSTER, node=name, incarnation=1, keyring=keyring)
        self.dec = Decoder(
            cluster=CLUSTER, node=name, incarnation=1, senders=(name, peer), keyring=keyring
        )

    def swap(self, change: Callable[[Keyring], Keyring]) -> None:
        """What SIGHUP does: build the new keyring, then swap it in with one assignment each."""
        new = change(self.enc.keyring)
        self.enc.keyring = new
        self.dec.keyring = new


def exchange(a: Node, b: Node) -> list[Packet | Reject]:
    """One packet each way, as at every keepalive."""
    return [b.dec.decode(a.enc.encode({"hb": 1}), 0.0), a.dec.decode(b.enc.encode({"hb": 1}), 0.0)]


@pytest.mark.parametrize("method", SIGNING, ids=lambda m: m.value)
def test_every_signing_method_round_trips_and_detects_a_wrong_secret(method: AuthMethod) -> None:
    key = AuthKey(3, method, b"s3cret")
    ring = Keyring((key,), active=3)
    enc = Encoder(cluster=CLUSTER, node="a", incarnation=1, keyring=ring)
    data = enc.encode({"x": 1})
    assert len(data) == 35 + 1 + 7 + auth.MAC_BYTES[method]
    good = Decoder(cluster=CLUSTER, node="b", incarnation=1, senders=("a",), keyring=ring)
    packet = good.decode(data, 0.0)
    assert isinstance(packet, Packet) and packet.key_id == 3
    forged = Keyring((AuthKey(3, method, b"guess"),), active=3)
    bad = Decoder(cluster=CLUSTER, node="b", incarnation=1, senders=("a",), keyring=forged)
    assert bad.decode(data, 0.0) == Reject(RejectReason.BAD_MAC, "a", 3)


def test_mac_matches_a_known_hmac_sha256_vector() -> None:
    """RFC 4231 test case 2, so a refactor cannot silently change the algorithm."""
    tag = auth.mac(AuthMethod.SHA256, b"Jefe", b"what do ya want for nothing?")
    assert tag.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_unknown_key_id_is_rejected_by_name() -> None:
    enc = Encoder(cluster=CLUSTER, node="a", incarnation=1, keyring=Keyring((NEW,), active=2))
    dec = Decoder(
        cluster=CLUSTER, node="b", incarnation=1, senders=("a",), keyring=Keyring((OLD,), 1)
    )
    assert dec.decode(enc.encode({}), 0.0) == Reject(RejectReason.UNKNOWN_KEY, "a", 2)


def test_unsigned_packet_corrupted_in_transit_is_bad_crc() -> None:
    ring = Keyring((), active=None, mode=AuthMode.ACCEPT_UNSIGNED)
    enc = Encoder(cluster=CLUSTER, node="a", incarnation=1, keyring=ring)
    dec = Decoder(cluster=CLUSTER, node="b", incarnation=1, senders=("a",), keyring=ring)
    data = bytearray(enc.encode({"state": "alive"}))
    data[-8] ^= 0x01  # a bit flip in the body
    assert dec.decode(bytes(data), 0.0) == Reject(RejectReason.BAD_CRC, "a", 0)


def auth_of(active: int, *keys: AuthKey, allow_unauthenticated: bool = False) -> Auth:
    return Auth(Path("authkeys"), active, keys, allow_unauthenticated)


def test_from_auth_enforces_by_default_and_drops_crc_entries() -> None:
    ring = Keyring.from_auth(auth_of(1, OLD, AuthKey(3, AuthMethod.CRC, b"")))
    assert ring.mode is AuthMode.ENFORCE
    assert ring.signing_key == OLD
    assert ring.key(3) is None


def test_tutorial_authkeys_gives_md5_key_3() -> None:
    """The tutorial's file: `auth 3`, `3 md5 Hello!` (legacy, the caller warns)."""
    tutorial = Path(__file__).resolve().parents[2] / "docs/examples/tutorial/master/authkeys"
    parsed, _ = parse_authkeys(tutorial, check_permissions=False)
    ring = Keyring.from_auth(parsed)
    assert ring.signing_key == AuthKey(3, AuthMethod.MD5, b"Hello!")
    assert ring.signing_key.method.legacy


def test_weaknesses_name_legacy_keys_and_unsigned_modes() -> None:
    assert Keyring((OLD, NEW), active=1).weaknesses() == ()
    legacy = Keyring((AuthKey(3, AuthMethod.MD5, b"Hello!"), OLD), active=1)
    (warning,) = legacy.weaknesses()
    assert "key 3 uses md5" in warning
    lenient = Keyring((OLD,), active=1, mode=AuthMode.SIGN_ACCEPT_BOTH)
    assert any("unsigned packets are accepted" in w for w in lenient.weaknesses())


def test_crc_active_key_needs_explicit_permission() -> None:
    crc_only = auth_of(1, AuthKey(1, AuthMethod.CRC, b""))
    with pytest.raises(KeyringError, match="crc"):
        Keyring.from_auth(crc_only)
    allowed = Keyring.from_auth(
        auth_of(1, AuthKey(1, AuthMethod.CRC, b""), allow_unauthenticated=True)
    )
    assert allowed.mode is AuthMode.ACCEPT_UNSIGNED and allowed.signing_key is None
    with pytest.raises(KeyringError, match="signs"):
        Keyring.from_auth(crc_only, mode=AuthMode.ENFORCE)


def test_keyring_refuses_changes_that_would_break_signing() -> None:
    ring = Keyring((OLD,), active=1)
    with pytest.raises(KeyringError):
        ring.remove(1)  # the active key
    with pytest.raises(KeyringError):
        ring.use(2)  # not installed
    with pytest.raises(KeyringError):
        ring.install(AuthKey(1, AuthMethod.SHA256, b"other"))  # same id, other secret
    with pytest.raises(KeyringError):
        Keyring((OLD, OLD), active=1)
    with pytest.raises(KeyringError):
        Keyring((OLD,), active=None, mode=AuthMode.ENFORCE)
    with pytest.raises(KeyringError):
        Keyring((AuthKey(1, AuthMethod.SHA256, b""),), active=1)
    assert ring.install(OLD) is ring
    assert ring.remove(9) is ring


def test_reload_keeps_mode_and_swaps_keys() -> None:
    ring = Keyring.from_auth(auth_of(1, OLD), mode=AuthMode.SIGN_ACCEPT_BOTH)
    new = ring.reload(auth_of(2, OLD, NEW))
    assert new.mode is AuthMode.SIGN_ACCEPT_BOTH
    assert new.signing_key == NEW and new.key(1) == OLD
    assert ring.signing_key == OLD  # the old keyring is untouched: swapping is atomic


# The three steps of a key change, each applied to one node at a time (a rolling change).
ROTATION: list[Callable[[Keyring], Keyring]] = [
    lambda r: r.install(NEW),
    lambda r: r.use(NEW.key_id),
    lambda r: r.remove(OLD.key_id),
]


def test_rolling_key_change_never_drops_a_packet() -> None:
    a = Node("masternginx", "slavenginx", Keyring((OLD,), active=1))
    b = Node("slavenginx", "masternginx", Keyring((OLD,), active=1))
    results = exchange(a, b)
    for step in ROTATION:
        for node in (a, b):
            node.swap(step)
            results += exchange(a, b)
    assert all(isinstance(r, Packet) for r in results), results
    assert a.enc.keyring.keys == b.enc.keyring.keys == (NEW,)
    last = b.dec.decode(a.enc.encode({}), 0.0)
    assert isinstance(last, Packet) and last.key_id == NEW.key_id


def test_skipping_the_install_step_everywhere_breaks_the_cluster() -> None:
    """The counter-case the procedure exists for: using a key a peer has not installed."""
    a = Node("masternginx", "slavenginx", Keyring((OLD,), active=1))
    b = Node("slavenginx", "masternginx", Keyring((OLD,), active=1))
    a.swap(lambda r: r.install(NEW).use(NEW.key_id))
    there, back = exchange(a, b)
    assert there == Reject(RejectReason.UNKNOWN_KEY, "masternginx", NEW.key_id)
    assert isinstance(back, Packet)


# Turning authentication on in a running cluster that ran unsigned.
ROLLOUT: list[Callable[[Keyring], Keyring]] = [
    lambda r: r.install(NEW).use(NEW.key_id),  # key everywhere, still sending unsigned
    lambda r: r.with_mode(AuthMode.SIGN_ACCEPT_BOTH),
    lambda r: r.with_mode(AuthMode.ENFORCE),
]


def test_turning_authentication_on_in_a_running_cluster_never_drops_a_packet() -> None:
    start = Keyring((), active=None, mode=AuthMode.ACCEPT_UNSIGNED)
    a = Node("masternginx", "slavenginx", start)
    b = Node("slavenginx", "masternginx", start)
    results = exchange(a, b)
    assert all(isinstance(r, Packet) and not r.authenticated for r in results)
    for step in ROLLOUT:
        for node in (a, b):
            node.swap(step)
            results += exchange(a, b)
    assert all(isinstance(r, Packet) for r in results), results
    final = exchange(a, b)
    assert all(isinstance(r, Packet) and r.authenticated for r in final)
    # Now enforced: an unsigned forgery is refused.
    forger = Encoder(cluster=CLUSTER, node="slavenginx", incarnation=9, keyring=start)
    assert a.dec.decode(forger.encode({}), 0.0) == Reject(RejectReason.UNSIGNED, "slavenginx", 0)


def test_enforcing_before_every_node_signs_drops_packets() -> None:
    start = Keyring((NEW,), active=2, mode=AuthMode.ACCEPT_UNSIGNED)
    a = Node("masternginx", "slavenginx", start)
    b = Node("slavenginx", "masternginx", start)
    a.swap(lambda r: r.with_mode(AuthMode.ENFORCE))
    there, back = exchange(a, b)
    assert isinstance(there, Packet)
    assert back == Reject(RejectReason.UNSIGNED, "slavenginx", 0)
