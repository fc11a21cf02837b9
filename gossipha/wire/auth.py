"""MAC primitives: HMAC per authkeys method, and CRC32 for unsigned (corruption-only) packets.

Kept apart from the packet layout so the one place that touches secrets is small enough to
read in full. One-shot `hmac.digest` is used because it is the C fast path (no Python HMAC
object per packet); comparison is always `hmac.compare_digest`, never `==`.
"""

from __future__ import annotations

import hmac
import zlib

from gossipha.config.model import AuthMethod

# Digest name for hashlib/hmac, and the MAC length each method appends to a packet.
_DIGEST: dict[AuthMethod, str] = {
    AuthMethod.MD5: "md5",
    AuthMethod.SHA1: "sha1",
    AuthMethod.SHA256: "sha256",
    AuthMethod.SHA512: "sha512",
}
MAC_BYTES: dict[AuthMethod, int] = {
    AuthMethod.MD5: 16,
    AuthMethod.SHA1: 20,
    AuthMethod.SHA256: 32,
    AuthMethod.SHA512: 64,
}
CRC_BYTES = 4  # the CRC32 trailer of an unsigned packet


def signs(method: AuthMethod) -> bool:
    """Whether a key of this method authenticates packets (`crc` does not)."""
    return method is not AuthMethod.CRC


def mac(method: AuthMethod, secret: bytes, data: bytes) -> bytes:
    """HMAC-`method` of `data` under `secret`; the trailer of a signed packet."""
    return hmac.digest(secret, data, _DIGEST[method])


def mac_ok(method: AuthMethod, secret: bytes, data: bytes, tag: bytes) -> bool:
    """Constant-time check that `tag` is the MAC of `data`; never raises on a bad tag."""
    return hmac.compare_digest(hmac.digest(secret, data, _DIGEST[method]), tag)


def crc(data: bytes) -> bytes:
    """CRC32 trailer of an unsigned packet: catches corruption, proves nothing about origin."""
    return zlib.crc32(data).to_bytes(CRC_BYTES, "big")


def crc_ok(data: bytes, tag: bytes) -> bool:
    """Whether `tag` is the CRC32 of `data` (not secret, so a plain compare is fine)."""
    return zlib.crc32(data).to_bytes(CRC_BYTES, "big") == tag
