"""atheris fuzz target for `gossipha.wire.codec.Decoder.decode` (coverage-guided).

    pip install atheris
    python fuzz/fuzz_decode.py -atheris_runs=1000000          # from the repository root

Oracle: decode never raises and returns a Packet or a Reject. The first input byte picks
what the rest of the input becomes, so the fuzzer reaches code behind the MAC too:
  0  raw datagram, decoder enforcing HMAC-SHA256 (keeps replay state across inputs)
  1  raw datagram, decoder accepting unsigned packets (CRC32 trailer)
  2  edits (position, xor) applied to a valid packet, signed or unsigned: must be rejected
  3  arbitrary body bytes inside an authentic packet: Packet with a dict body, or bad_body
  4  authentic unsigned packets with fuzzed sender, incarnation, seq, flags and minor, fed to
     one long-lived decoder, so the replay window sees arbitrary 64-bit sequences
  5  the input repeated 32 times: long and oversized datagrams
Results are recorded in docs/benchmarks.md ("## Wire").
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    import orjson

    from gossipha.config.model import AuthKey, AuthMethod
    from gossipha.wire.codec import Decoder, Encoder, Packet, cluster_id, seal
    from gossipha.wire.keyring import AuthMode, Keyring
    from gossipha.wire.reject import Reject, RejectReason

CLUSTER = cluster_id("nginx")
KEY = AuthKey(1, AuthMethod.SHA256, b"fuzz secret")
SIGNED = Keyring((KEY,), active=1)
UNSIGNED = Keyring((KEY,), active=1, mode=AuthMode.ACCEPT_UNSIGNED)
NODES = ("masternginx", "slavenginx")


def decoder(ring: Keyring) -> Decoder:
    return Decoder(cluster=CLUSTER, node="slavenginx", incarnation=1, senders=NODES, keyring=ring)


LONG_LIVED = {0: decoder(SIGNED), 1: decoder(UNSIGNED)}
REPLAYED = decoder(UNSIGNED)
BODY = {"type": "heartbeat", "term": 3, "members": [{"node": "masternginx", "hb": 9}]}
VALID = Encoder(cluster=CLUSTER, node="masternginx", incarnation=7, keyring=SIGNED).encode(BODY)
VALID_UNSIGNED = Encoder(
    cluster=CLUSTER, node="masternginx", incarnation=7, keyring=UNSIGNED
).encode(BODY)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 6, data[1:]
    if mode == 5:
        # libFuzzer keeps inputs short (length adds no coverage); long datagrams come from here.
        result = LONG_LIVED[0].decode(rest * 32, 0.0)
        assert isinstance(result, Packet | Reject)
    elif mode in LONG_LIVED:
        result = LONG_LIVED[mode].decode(rest, 0.0)
        assert isinstance(result, Packet | Reject)
    elif mode == 2:
        signed = len(rest) % 2 == 0
        original = VALID if signed else VALID_UNSIGNED
        mutated = bytearray(original)
        edits = {rest[i] % len(mutated) for i in range(0, len(rest) - 1, 2) if rest[i + 1]}
        for i in range(0, len(rest) - 1, 2):
            mutated[rest[i] % len(mutated)] ^= rest[i + 1]
        result = decoder(SIGNED if signed else UNSIGNED).decode(bytes(mutated), 0.0)
        if bytes(mutated) == original:
            assert isinstance(result, Packet)
        elif signed or len(edits) == 1:
            # HMAC catches any change; CRC32 any change of one byte (more may collide).
            assert isinstance(result, Reject), (bytes(mutated).hex(), result)
    elif mode == 4:
        fdp = atheris.FuzzedDataProvider(rest)
        sender = NODES[fdp.ConsumeIntInRange(0, 1)].encode()
        incarnation = fdp.ConsumeIntInRange(0, 3) << fdp.ConsumeIntInRange(0, 62)
        seq = fdp.ConsumeIntInRange(0, 2**64 - 1)
        flags, minor = fdp.ConsumeIntInRange(0, 255), fdp.ConsumeIntInRange(0, 255)
        body = b'{"hb":%d}' % fdp.ConsumeIntInRange(0, 2**32)
        packet = seal(
            cluster=CLUSTER,
            sender=sender,
            incarnation=incarnation,
            seq=seq,
            body=body,
            key=None,
            flags=flags,
            minor=minor,
        )
        result = REPLAYED.decode(packet, 0.0)
        assert isinstance(result, Packet | Reject)
        if isinstance(result, Packet):
            assert REPLAYED.decode(packet, 0.0) == Reject(RejectReason.REPLAY, result.sender, 0)
    else:
        packet = seal(
            cluster=CLUSTER, sender=b"masternginx", incarnation=1, seq=1, body=rest[:1300], key=KEY
        )
        result = decoder(SIGNED).decode(packet, 0.0)
        if isinstance(result, Reject):
            assert result.reason is RejectReason.BAD_BODY, result
        else:
            assert result.body == orjson.loads(rest[:1300])


def main() -> None:
    argv = list(sys.argv)
    if not any(arg.startswith("-max_len=") for arg in argv):
        argv.append("-max_len=2048")  # past MAX_PACKET_BYTES, so too_large is reached too
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
