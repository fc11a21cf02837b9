"""Property tests of `Decoder.decode` on hostile input (the in-CI part of the fuzzing).

Every byte string gives a Packet or a Reject, never an exception; a valid packet changed in
any one byte, cut short or extended is rejected (or, never in practice, decodes to the same
packet). fuzz/fuzz_decode.py runs the same oracle under atheris for millions of inputs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gossipha.config.model import AuthKey, AuthMethod
from gossipha.wire import codec
from gossipha.wire.codec import Decoder, Encoder, Packet, PacketTooLarge, cluster_id, seal
from gossipha.wire.keyring import AuthMode, Keyring
from gossipha.wire.reject import Reject, RejectReason

CLUSTER = cluster_id("nginx")
KEYS = {m: AuthKey(7, m, b"fuzz secret") for m in AuthMethod if m is not AuthMethod.CRC}
NODES = ("masternginx", "slavenginx")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
# Which keyring the pair uses: each signing method in ENFORCE, or unsigned (CRC32) packets.
modes = st.sampled_from([*KEYS.values(), None])


def keyring(key: AuthKey | None) -> Keyring:
    if key is None:
        return Keyring((), active=None, mode=AuthMode.ACCEPT_UNSIGNED)
    return Keyring((key,), active=key.key_id)


def fresh_decoder(key: AuthKey | None) -> Decoder:
    return Decoder(
        cluster=CLUSTER, node="slavenginx", incarnation=1, senders=NODES, keyring=keyring(key)
    )


def valid_packet(key: AuthKey | None, body: dict[str, Any], seq: int) -> bytes:
    enc = Encoder(
        cluster=CLUSTER, node="masternginx", incarnation=42, keyring=keyring(key), first_seq=seq
    )
    try:
        return enc.encode(body)
    except PacketTooLarge:
        assume(False)
        raise


@given(modes, bodies, st.integers(0, 2**64 - 1))
def test_round_trip(key: AuthKey | None, body: dict[str, Any], seq: int) -> None:
    packet = fresh_decoder(key).decode(valid_packet(key, body, seq), now_s=3.0)
    assert isinstance(packet, Packet)
    assert (packet.sender, packet.incarnation, packet.seq) == ("masternginx", 42, seq)
    assert packet.body == body
    assert packet.authenticated == (key is not None)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modes, bodies, st.data())
def test_any_single_byte_change_is_rejected(
    key: AuthKey | None, body: dict[str, Any], data: st.DataObject
) -> None:
    """Covers every position: for one packet, each byte is XORed with a drawn non-zero value.

    With a MAC the change is caught unless it is in a byte the MAC does not cover (there is
    none); unsigned, CRC32 catches every change of up to 32 bits.
    """
    original = valid_packet(key, body, 1)
    size = len(original)
    flips = data.draw(st.binary(min_size=size, max_size=size), label="xor per position")
    for pos, flip in enumerate(flips):
        mutated = bytearray(original)
        mutated[pos] ^= flip or 0x80
        result = fresh_decoder(key).decode(bytes(mutated), 0.0)
        assert isinstance(result, Reject), (pos, flip)


@settings(deadline=None)
@given(modes, bodies, st.binary(min_size=1, max_size=64))
def test_truncation_and_extension_are_rejected(
    key: AuthKey | None, body: dict[str, Any], tail: bytes
) -> None:
    original = valid_packet(key, body, 1)
    for cut in range(len(original)):
        assert isinstance(fresh_decoder(key).decode(original[:cut], 0.0), Reject), cut
    assert isinstance(fresh_decoder(key).decode(original + tail, 0.0), Reject)


@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    for key in (KEYS[AuthMethod.SHA256], None):
        result = fresh_decoder(key).decode(data, 0.0)
        assert isinstance(result, Packet | Reject)


@given(
    st.builds(
        lambda magic, rest: magic + rest,
        st.sampled_from([codec.MAGIC, b"GSHB", b""]),
        st.binary(max_size=80),
    ),
    st.sampled_from([codec.MAJOR, 0, 2]),
    st.binary(min_size=1, max_size=8),
)
def test_plausible_headers_never_raise(prefix: bytes, major: int, noise: bytes) -> None:
    """Random bytes rarely pass the magic; these start like a packet of ours."""
    data = bytearray(codec.MAGIC + bytes([major, 0, 0, 7]) + CLUSTER + prefix + noise)
    result = fresh_decoder(KEYS[AuthMethod.SHA256]).decode(bytes(data), 0.0)
    assert isinstance(result, Reject)


@given(st.binary(max_size=1300))
def test_authentic_packet_with_any_body_bytes_never_raises(body: bytes) -> None:
    """Behind the MAC: a peer holding the key (or a bug in it) sends arbitrary bytes."""
    key = KEYS[AuthMethod.SHA256]
    data = seal(cluster=CLUSTER, sender=b"masternginx", incarnation=1, seq=1, body=body, key=key)
    result = fresh_decoder(key).decode(data, 0.0)
    if isinstance(result, Reject):
        assert result.reason is RejectReason.BAD_BODY
    else:
        assert isinstance(result.body, dict)
