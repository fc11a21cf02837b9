"""Packet layout, size limit, versioning and the order of checks in `Decoder.decode`."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from gossipha.config.model import Auth, AuthKey, AuthMethod
from gossipha.wire import codec
from gossipha.wire.codec import (
    HEADER_BYTES,
    MAX_PACKET_BYTES,
    Decoder,
    EncodeError,
    Encoder,
    Packet,
    PacketTooLarge,
    cluster_id,
    seal,
)
from gossipha.wire.keyring import AuthMode, Keyring
from gossipha.wire.reject import Reject, RejectReason

KEY = AuthKey(1, AuthMethod.SHA256, b"tutorial secret")
CLUSTER = cluster_id("nginx")
KEYRING = Keyring((KEY,), active=1)
NODES = ("masternginx", "slavenginx")


def encoder(
    node: str = "masternginx", incarnation: int = 100, keyring: Keyring = KEYRING
) -> Encoder:
    return Encoder(cluster=CLUSTER, node=node, incarnation=incarnation, keyring=keyring)


def decoder(
    node: str = "slavenginx", keyring: Keyring = KEYRING, incarnation: int = 200
) -> Decoder:
    return Decoder(
        cluster=CLUSTER, node=node, incarnation=incarnation, senders=NODES, keyring=keyring
    )


def heartbeat_body() -> dict[str, Any]:
    """Shaped like a gossip digest: a few members with incarnation, state and lease."""
    return {
        "type": "heartbeat",
        "term": 7,
        "members": [
            {"node": name, "incarnation": 1732600000000000 + i, "state": "alive", "hb": 41 + i}
            for i, name in enumerate(NODES)
        ],
        "lease": {"holder": "masternginx", "term": 7, "remaining_s": 1.75},
        "ping": {"192.168.17.1": True},
    }


def test_round_trip_carries_sender_numbers_and_body() -> None:
    enc, dec = encoder(), decoder()
    data = enc.encode(heartbeat_body())
    packet = dec.decode(data, now_s=12.5)
    assert packet == Packet(
        sender="masternginx",
        incarnation=100,
        seq=1,
        body=heartbeat_body(),
        key_id=1,
        minor=codec.MINOR,
        flags=0,
        received_s=12.5,
    )
    assert packet.authenticated
    assert enc.next_seq == 2


def test_header_layout_matches_docs_protocol() -> None:
    """The byte offsets below are the diagram in docs/protocol.md; change both or neither."""
    data = encoder().encode({"a": 1})
    assert data[0:4] == b"GSHA"
    assert data[4] == 1 and data[5] == 2  # major, minor (1.2: the lease messages' `i`)
    assert data[6] == 0  # flags
    assert data[7] == 1  # key id
    assert data[8:16] == CLUSTER
    assert struct.unpack(">Q", data[16:24]) == (100,)  # incarnation
    assert struct.unpack(">Q", data[24:32]) == (1,)  # seq
    assert struct.unpack(">H", data[32:34]) == (len(b'{"a":1}'),)  # body length
    assert data[34] == len(b"masternginx")
    assert data[35:46] == b"masternginx"
    assert data[46:53] == b'{"a":1}'
    assert len(data) == 53 + 32  # HMAC-SHA256
    assert HEADER_BYTES == 35


def test_worked_example_in_docs_protocol_is_exact() -> None:
    """docs/protocol.md shows this packet as a hex dump; a format change must update it."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    dump = re.findall(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} )*[0-9a-f]{2})", doc, re.MULTILINE)
    ring = Keyring((AuthKey(1, AuthMethod.SHA256, b"example secret"),), active=1)
    enc = Encoder(
        cluster=CLUSTER,
        node="masternginx",
        incarnation=1732600000000000,
        keyring=ring,
        first_seq=42,
    )
    data = enc.encode({"type": "heartbeat", "term": 7})
    assert data == bytes.fromhex("".join(dump))


def test_cluster_id_is_stable_and_distinguishes_names() -> None:
    assert cluster_id("nginx") == cluster_id("nginx")
    assert cluster_id("nginx") != cluster_id("nginx2")
    assert len(cluster_id("")) == 8


def test_encoder_refuses_a_body_that_does_not_fit_one_datagram() -> None:
    enc = encoder()
    with pytest.raises(PacketTooLarge) as err:
        enc.encode({"blob": "x" * MAX_PACKET_BYTES})
    assert err.value.size_bytes > MAX_PACKET_BYTES == err.value.limit_bytes
    assert enc.next_seq == 1  # a refused packet uses up no sequence number


def test_largest_packet_that_fits_is_exactly_the_limit_and_decodes() -> None:
    overhead = HEADER_BYTES + len(b"masternginx") + 32 + len(b'{"b":""}')
    body = {"b": "x" * (MAX_PACKET_BYTES - overhead)}
    enc = encoder()
    assert enc.max_body_bytes == MAX_PACKET_BYTES - overhead + len(b'{"b":""}')
    data = enc.encode(body)
    assert len(data) == MAX_PACKET_BYTES
    assert isinstance(decoder().decode(data, 0.0), Packet)
    with pytest.raises(PacketTooLarge):
        encoder().encode({"b": "x" * (MAX_PACKET_BYTES - overhead + 1)})


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None])
def test_encoder_refuses_a_body_that_is_not_an_object(body: Any) -> None:
    with pytest.raises(EncodeError):
        encoder().encode(body)


def test_encoder_refuses_values_json_cannot_carry() -> None:
    with pytest.raises(EncodeError):
        encoder().encode({"when": object()})


def test_encoder_refuses_names_that_cannot_be_sent() -> None:
    with pytest.raises(ValueError):
        encoder(node="")
    with pytest.raises(ValueError):
        encoder(node="n" * 65)


def test_oversized_datagram_is_rejected_before_reading_it() -> None:
    assert decoder().decode(b"GSHA" + b"\0" * MAX_PACKET_BYTES, 0.0) == Reject(
        RejectReason.TOO_LARGE
    )


@pytest.mark.parametrize("data", [b"", b"GSHA", b"GSHA" + b"\0" * 30])
def test_short_datagram_is_malformed(data: bytes) -> None:
    assert decoder().decode(data, 0.0) == Reject(RejectReason.MALFORMED)


def test_heartbeat_v1_text_packet_is_bad_magic() -> None:
    """Old Heartbeat nodes on UDP 694 during a migration send text packets; ignore them."""
    old = b">>>\nt=status\nst=active\ndt=7530\nprotocol=1\nsrc=masternginx\n<<<\n"
    assert decoder().decode(old, 0.0) == Reject(RejectReason.BAD_MAGIC)


def _resigned(data: bytes, offset: int, value: int) -> bytes:
    """`data` with one header byte changed and the MAC recomputed, as a real sender would."""
    from gossipha.wire import auth

    changed = bytearray(data[:-32])
    changed[offset] = value
    return bytes(changed) + auth.mac(KEY.method, KEY.secret, bytes(changed))


def test_next_minor_version_is_accepted_and_its_unknown_fields_ignored() -> None:
    body = {**heartbeat_body(), "added_in_1_1": {"whatever": [1, 2]}}
    data = _resigned(encoder().encode(body), 5, codec.MINOR + 1)
    packet = decoder().decode(data, 0.0)
    assert isinstance(packet, Packet)
    assert packet.minor == codec.MINOR + 1
    assert packet.body["term"] == 7  # the fields we know are read as before


def test_unknown_flag_bits_are_ignored() -> None:
    packet = decoder().decode(_resigned(encoder().encode({"a": 1}), 6, 0xFF), 0.0)
    assert isinstance(packet, Packet) and packet.flags == 0xFF


@pytest.mark.parametrize("major", [0, 2, 255])
def test_other_major_version_is_rejected(major: int) -> None:
    data = _resigned(encoder().encode({"a": 1}), 4, major)
    assert decoder().decode(data, 0.0) == Reject(RejectReason.BAD_VERSION)


def test_other_cluster_is_ignored_even_with_the_same_key() -> None:
    other = Encoder(cluster=cluster_id("other"), node="masternginx", incarnation=1, keyring=KEYRING)
    assert decoder().decode(other.encode({"a": 1}), 0.0) == Reject(RejectReason.WRONG_CLUSTER)


def test_unknown_sender_is_rejected_and_leaves_no_state() -> None:
    dec = decoder()
    stranger = encoder(node="intruder")
    assert dec.decode(stranger.encode({"a": 1}), 0.0) == Reject(RejectReason.UNKNOWN_SENDER)
    assert dec.peer_incarnation("intruder") is None


def test_config_reload_adds_senders_and_keeps_replay_state() -> None:
    dec = decoder()
    first = encoder().encode({"a": 1})
    assert isinstance(dec.decode(first, 0.0), Packet)
    dec.update_senders((*NODES, "witness1"))
    assert isinstance(dec.decode(encoder(node="witness1").encode({}), 0.0), Packet)
    assert dec.decode(first, 0.0) == Reject(RejectReason.REPLAY, "masternginx", 1)
    dec.update_senders(("slavenginx", "witness1"))
    assert dec.decode(encoder().encode({}), 0.0) == Reject(RejectReason.UNKNOWN_SENDER)


def test_own_echo_is_loopback_and_a_namesake_is_a_conflict() -> None:
    """Broadcast links hand us our own packets; another node with our name must be seen."""
    dec = decoder(node="slavenginx", incarnation=200)
    ours = encoder(node="slavenginx", incarnation=200).encode({"a": 1})
    namesake = encoder(node="slavenginx", incarnation=999).encode({"a": 1})
    assert dec.decode(ours, 0.0) == Reject(RejectReason.LOOPBACK, "slavenginx", 1)
    assert dec.decode(namesake, 0.0) == Reject(RejectReason.NAME_CONFLICT, "slavenginx", 1)


def _signed_raw_body(body: bytes, seq: int = 1) -> bytes:
    return seal(
        cluster=CLUSTER,
        sender=b"masternginx",
        incarnation=100,
        seq=seq,
        body=body,
        key=KEY,
    )


@pytest.mark.parametrize(
    "body",
    [b"", b"[1,2]", b'"s"', b"null", b"{", b'{"a":1}x', b"\xff\xfe", b"[" * 600 + b"]" * 600],
    ids=["empty", "array", "string", "null", "truncated", "trailing", "not-utf8", "deep"],
)
def test_authentic_packet_with_a_body_that_is_not_an_object_is_bad_body(body: bytes) -> None:
    assert decoder().decode(_signed_raw_body(body), 0.0) == Reject(
        RejectReason.BAD_BODY, "masternginx", 1
    )


def test_bad_body_does_not_use_up_the_sequence_number() -> None:
    """A later valid packet with the same number is still accepted: only accepted packets
    mark the replay window."""
    dec = decoder()
    assert isinstance(dec.decode(_signed_raw_body(b"[]", seq=5), 0.0), Reject)
    assert isinstance(dec.decode(_signed_raw_body(b"{}", seq=5), 0.0), Packet)


def test_trailing_or_missing_bytes_are_malformed() -> None:
    data = encoder().encode({"a": 1})
    malformed = Reject(RejectReason.MALFORMED, "masternginx", 1)
    assert decoder().decode(data + b"\0", 0.0) == malformed
    assert decoder().decode(data[:-1], 0.0) == malformed


def test_decoder_accepts_the_bytes_orjson_produced_for_every_json_type() -> None:
    body = {"s": "é☃", "i": -(2**63), "u": 2**64 - 1, "f": 0.1, "b": False, "n": None, "l": []}
    packet = decoder().decode(encoder().encode(body), 0.0)
    assert isinstance(packet, Packet) and packet.body == body
    assert orjson.loads(orjson.dumps(body)) == body


def test_keyring_swap_keeps_replay_state() -> None:
    """Reloading keys on SIGHUP must not reopen the window for captured packets."""
    enc, dec = encoder(), decoder()
    data = enc.encode({"a": 1})
    assert isinstance(dec.decode(data, 0.0), Packet)
    dec.keyring = Keyring.from_auth(Auth(Path("authkeys"), 1, (KEY,)))
    assert dec.decode(data, 1.0) == Reject(RejectReason.REPLAY, "masternginx", 1)


def test_unsigned_packet_needs_a_keyring_that_accepts_unsigned() -> None:
    unsigned = encoder(keyring=KEYRING.with_mode(AuthMode.ACCEPT_UNSIGNED)).encode({"a": 1})
    assert unsigned[7] == 0  # key id 0: no MAC, CRC32 trailer
    assert decoder().decode(unsigned, 0.0) == Reject(RejectReason.UNSIGNED, "masternginx", 0)
    lenient = decoder(keyring=KEYRING.with_mode(AuthMode.SIGN_ACCEPT_BOTH))
    packet = lenient.decode(unsigned, 0.0)
    assert isinstance(packet, Packet) and not packet.authenticated
