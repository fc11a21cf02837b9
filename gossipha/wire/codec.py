"""Packets on the wire: a fixed binary header, an orjson body, then a MAC (docs/protocol.md).

    magic "GSHA" | major | minor | flags | key id | cluster id (8) | incarnation (8)
    | seq (8) | body length (2) | sender length (1) | sender | body (JSON object) | MAC

Bytes in, typed values out: no sockets, no clock. `Decoder.decode` turns *any* byte string
into a verified `Packet` or a typed `Reject`; it never raises for remote input, and its
work per packet is bounded: the size is checked before anything is read, the MAC before
the body is parsed, and the body is at most MAX_PACKET_BYTES of JSON. `Encoder.encode`
raises (`WireError`) only for our own mistakes, e.g. a body too big for one datagram.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gossipha.config.model import AuthKey
from gossipha.wire import auth
from gossipha.wire.keyring import Keyring
from gossipha.wire.reject import Reject, RejectReason
from gossipha.wire.replay import DEFAULT_WINDOW, ReplayGuard

MAGIC = b"GSHA"
MAJOR = 1  # a different major is rejected: the header layout may differ
# 1.1 added the heartbeat's `lq`, 1.2 the lease messages' `i` (docs/protocol.md). Any
# minor of our major is accepted; unknown body fields and flags are ignored.
MINOR = 2
MAX_PACKET_BYTES = 1400  # one datagram fits a 1500-byte MTU with IPv6 + UDP + tunnel room
MAX_SENDER_BYTES = 64  # HOST_NAME_MAX on Linux
UNSIGNED_KEY_ID = 0  # key id of a packet with a CRC32 trailer instead of a MAC
CLUSTER_ID_BYTES = 8

# magic, major, minor, flags, key id, cluster id, incarnation, seq, body length, sender length
HEADER = struct.Struct(">4sBBBB8sQQHB")
HEADER_BYTES = HEADER.size  # 35
_U64 = (1 << 64) - 1


class WireError(Exception):
    """A packet we were asked to send cannot be sent (our misuse, never remote input)."""


class EncodeError(WireError):
    """The body is not a JSON object of JSON values."""


class PacketTooLarge(WireError):
    """The packet would exceed one datagram; the caller must split its state over packets."""

    def __init__(self, size_bytes: int, limit_bytes: int = MAX_PACKET_BYTES) -> None:
        super().__init__(f"packet of {size_bytes} bytes exceeds the {limit_bytes}-byte limit")
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


def cluster_id(cluster_name: str) -> bytes:
    """8 bytes naming the cluster, so two clusters sharing a network or key ignore each other.

    Not a secret and not an authenticator: it only sorts traffic; the MAC covers it.
    """
    return hashlib.sha256(b"gossipha cluster\0" + cluster_name.encode("utf-8")).digest()[
        :CLUSTER_ID_BYTES
    ]


def sender_bytes(name: str) -> bytes:
    """The node name as carried in the header; ValueError for a name that cannot be sent."""
    raw = name.encode("utf-8")
    if not 1 <= len(raw) <= MAX_SENDER_BYTES:
        raise ValueError(f"node name {name!r}: expected 1 to {MAX_SENDER_BYTES} UTF-8 bytes")
    return raw


@dataclass(frozen=True, slots=True)
class Packet:
    """A datagram that passed every check: authentic (unless unsigned was allowed), fresh,
    from a configured peer. `body` is the opaque JSON object the core's messages live in."""

    sender: str
    incarnation: int
    seq: int
    body: dict[str, Any]
    key_id: int  # 0: unsigned (accepted only because the keyring allows it)
    minor: int  # the sender's protocol minor version
    flags: int  # unknown bits are ignored (see docs/protocol.md)
    received_s: float

    @property
    def authenticated(self) -> bool:
        return self.key_id != UNSIGNED_KEY_ID


def encode_body(body: dict[str, Any]) -> bytes:
    """orjson bytes of a JSON object; EncodeError for anything else."""
    if not isinstance(body, dict):
        raise EncodeError(f"body must be a dict (a JSON object), got {type(body).__name__}")
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise EncodeError(f"body is not JSON: {exc}") from None


def seal(
    *,
    cluster: bytes,
    sender: bytes,
    incarnation: int,
    seq: int,
    body: bytes,
    key: AuthKey | None,
    flags: int = 0,
    minor: int = MINOR,
) -> bytes:
    """Header + sender + body + trailer (HMAC with `key`, or CRC32 when `key` is None).

    The low-level builder: `Encoder` uses it, and so do tests and the fuzz target that need
    authentic packets around arbitrary bodies.
    """
    if len(cluster) != CLUSTER_ID_BYTES:
        raise ValueError(f"cluster id must be {CLUSTER_ID_BYTES} bytes")
    if not 1 <= len(sender) <= MAX_SENDER_BYTES:
        raise ValueError(f"sender must be 1 to {MAX_SENDER_BYTES} bytes")
    if not (0 <= incarnation <= _U64 and 0 <= seq <= _U64):
        raise ValueError("incarnation and seq must fit in 64 bits")
    trailer = auth.CRC_BYTES if key is None else auth.MAC_BYTES[key.method]
    size = HEADER_BYTES + len(sender) + len(body) + trailer
    if size > MAX_PACKET_BYTES:
        raise PacketTooLarge(size)
    key_id = UNSIGNED_KEY_ID if key is None else key.key_id
    header = HEADER.pack(
        MAGIC, MAJOR, minor, flags, key_id, cluster, incarnation, seq, len(body), len(sender)
    )
    signed = header + sender + body
    if key is None:
        return signed + auth.crc(signed)
    return signed + auth.mac(key.method, key.secret, signed)


class Encoder:
    """Numbers and signs outgoing packets for one node in one incarnation.

    `keyring` may be replaced at any time (key reload); sequence numbers carry on.
    """

    __slots__ = ("_cluster", "_next_seq", "_sender", "incarnation", "keyring")

    def __init__(
        self, *, cluster: bytes, node: str, incarnation: int, keyring: Keyring, first_seq: int = 1
    ) -> None:
        if len(cluster) != CLUSTER_ID_BYTES:
            raise ValueError(f"cluster id must be {CLUSTER_ID_BYTES} bytes")
        if not 0 <= incarnation <= _U64:
            raise ValueError("incarnation must fit in 64 bits")
        self._cluster = cluster
        self._sender = sender_bytes(node)
        self.incarnation = incarnation
        self.keyring = keyring
        self._next_seq = first_seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def max_body_bytes(self) -> int:
        """The largest JSON body one packet can carry with the current key: the budget a
        caller splits its state to (1,400 minus header, our name and the MAC)."""
        key = self.keyring.signing_key
        trailer = auth.CRC_BYTES if key is None else auth.MAC_BYTES[key.method]
        return MAX_PACKET_BYTES - HEADER_BYTES - len(self._sender) - trailer

    def encode(self, body: dict[str, Any]) -> bytes:
        """One signed datagram; PacketTooLarge when `body` does not fit (split it)."""
        packet = seal(
            cluster=self._cluster,
            sender=self._sender,
            incarnation=self.incarnation,
            seq=self._next_seq,
            body=encode_body(body),
            key=self.keyring.signing_key,
        )
        self._next_seq += 1  # only a packet actually built uses up a number
        return packet


class Decoder:
    """Verifies datagrams for one node: keyring, configured senders and their replay state.

    `keyring` may be replaced at any time (SIGHUP); the replay state is kept across the swap,
    since dropping it would let every captured packet be replayed once.
    """

    __slots__ = ("_cluster", "_names", "_node", "_replay", "incarnation", "keyring")

    def __init__(
        self,
        *,
        cluster: bytes,
        node: str,
        incarnation: int,
        senders: Iterable[str],
        keyring: Keyring,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if len(cluster) != CLUSTER_ID_BYTES:
            raise ValueError(f"cluster id must be {CLUSTER_ID_BYTES} bytes")
        peers = {name for name in senders if name != node}
        self._cluster = cluster
        self._node = node
        self.incarnation = incarnation
        self.keyring = keyring
        # bytes -> name for every configured node (ourselves too, to spot our own echo).
        self._names = {sender_bytes(name): name for name in peers | {node}}
        self._replay = ReplayGuard(peers, window)

    def decode(self, data: bytes, now_s: float) -> Packet | Reject:
        """A verified packet, or why not; never raises, bounded work for any input."""
        size = len(data)
        if size > MAX_PACKET_BYTES:
            return Reject(RejectReason.TOO_LARGE)
        if size < HEADER_BYTES:
            return Reject(RejectReason.MALFORMED)
        magic, major, minor, flags, key_id, cluster, inc, seq, body_len, sender_len = (
            HEADER.unpack_from(data)
        )
        if magic != MAGIC:
            return Reject(RejectReason.BAD_MAGIC)
        if major != MAJOR:
            return Reject(RejectReason.BAD_VERSION)
        if cluster != self._cluster:
            return Reject(RejectReason.WRONG_CLUSTER)
        body_at = HEADER_BYTES + sender_len
        if sender_len == 0 or size < body_at:
            return Reject(RejectReason.MALFORMED)
        name = self._names.get(data[HEADER_BYTES:body_at])
        if name is None:
            return Reject(RejectReason.UNKNOWN_SENDER)
        mac_at = body_at + body_len
        keyring = self.keyring  # one keyring for the whole packet, even if swapped meanwhile
        if key_id == UNSIGNED_KEY_ID:
            if not keyring.mode.accepts_unsigned:
                return Reject(RejectReason.UNSIGNED, name, key_id)
            if size != mac_at + auth.CRC_BYTES:
                return Reject(RejectReason.MALFORMED, name, key_id)
            if not auth.crc_ok(data[:mac_at], data[mac_at:]):
                return Reject(RejectReason.BAD_CRC, name, key_id)
        else:
            key = keyring.key(key_id)
            if key is None:
                return Reject(RejectReason.UNKNOWN_KEY, name, key_id)
            if size != mac_at + auth.MAC_BYTES[key.method]:
                return Reject(RejectReason.MALFORMED, name, key_id)
            if not auth.mac_ok(key.method, key.secret, data[:mac_at], data[mac_at:]):
                return Reject(RejectReason.BAD_MAC, name, key_id)
        if name == self._node:
            ours = inc == self.incarnation
            why = RejectReason.LOOPBACK if ours else RejectReason.NAME_CONFLICT
            return Reject(why, name, key_id)
        stale = self._replay.check(name, inc, seq)
        if stale is not None:
            return Reject(stale, name, key_id)
        try:
            body = orjson.loads(data[body_at:mac_at])
        except orjson.JSONDecodeError:
            return Reject(RejectReason.BAD_BODY, name, key_id)
        if not isinstance(body, dict):
            return Reject(RejectReason.BAD_BODY, name, key_id)
        self._replay.accept(name, inc, seq)
        return Packet(name, inc, seq, body, key_id, minor, flags, now_s)

    def update_senders(self, senders: Iterable[str]) -> None:
        """Nodes added or removed on a config reload; replay state of the others is kept."""
        peers = {name for name in senders if name != self._node}
        names = {sender_bytes(name): name for name in peers | {self._node}}
        self._replay.retrack(peers)
        self._names = names

    def peer_incarnation(self, sender: str) -> int | None:
        """The newest incarnation accepted from `sender`, for status output."""
        return self._replay.incarnation(sender)
