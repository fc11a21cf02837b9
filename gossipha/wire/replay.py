"""Replay protection: per sender, the newest incarnation seen and a sliding sequence window.

A sender numbers its packets (incarnation, seq): the incarnation is fixed for one run of the
agent and higher after every restart (`next_incarnation`), seq counts up from 1 within it.
A receiver keeps, per configured sender, the highest incarnation seen and a bitmap of the
last `window` sequence numbers (IPsec / WireGuard style), so packets may arrive reordered
by up to `window` places but none is accepted twice, and nothing from an earlier
incarnation is accepted once a later one was seen. The first packet accepted from an
incarnation closes the window below it: nothing numbered lower is accepted after it.

One counter per sender covers every peer and every link (a message sent on two links is
two packets, two numbers), so the numbers one receiver sees from a sender are spread over
all of that sender's streams: at N = 32 on two links a copy on the slower link can be
hundreds of numbers behind the other link's next packet. `window_for` sizes the window by
that spread (docs/security.md, "Replay").

Only configured senders have state (the table is built from the config and never grows),
so a flood of forged names costs no memory. Checks are split in two: `check` before the
body is parsed (cheap rejects first) and `accept` once the packet is fully valid, so a
packet that fails later does not consume its sequence number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gossipha.wire.reject import RejectReason

DEFAULT_WINDOW = 64
# Reordering tolerated per (receiver, link) stream of a sender; WireGuard's window is 8,192
# numbers in all, which bounds ours too (a bitmap of 1 KiB per configured sender).
STREAM_WINDOW = 64
MAX_WINDOW = 8192
MAX_SENDERS = 1024  # far above any real cluster; a config this large is a mistake
_U64 = (1 << 64) - 1


def next_incarnation(wall_us: int, previous: int | None) -> int:
    """The incarnation for a new start: wall-clock microseconds, but always above `previous`.

    The runtime persists the value it used and passes it back here at the next start, so
    a clock stepped backwards (no RTC, bad NTP) still yields a higher incarnation.
    """
    candidate = max(wall_us, 1)
    if previous is not None and candidate <= previous:
        candidate = previous + 1
    if candidate > _U64:
        raise ValueError("incarnation does not fit in 64 bits")
    return candidate


def window_for(links: int, peers: int) -> int:
    """The window for a cluster of `peers` other nodes on `links` links.

    A sender numbers all its packets from one counter, and in the worst case sends each of
    its (receiver, link) streams the same share: a receiver's copy on one link then falls
    `links * peers` numbers behind per packet the other streams got meanwhile. This keeps
    STREAM_WINDOW packets of reordering per stream (bounded by MAX_WINDOW), not 64 numbers
    in all, which at N = 32 on two links is less than one round of the holder's renewals.
    A power of two, at least DEFAULT_WINDOW.
    """
    want = STREAM_WINDOW * max(links, 1) * max(peers, 1)
    window = DEFAULT_WINDOW
    while window < want and window < MAX_WINDOW:
        window *= 2
    return window


@dataclass(slots=True)
class _Window:
    """One sender's state: bit i of `seen` is set when sequence number `top - i` was accepted."""

    incarnation: int
    top: int
    seen: int


class ReplayGuard:
    """Per configured sender, which (incarnation, seq) pairs were already accepted."""

    __slots__ = ("_state", "_window")

    def __init__(self, senders: Iterable[str], window: int = DEFAULT_WINDOW) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be 1 to {MAX_WINDOW} packets, got {window}")
        names = frozenset(senders)
        if len(names) > MAX_SENDERS:
            raise ValueError(f"{len(names)} senders; at most {MAX_SENDERS} are tracked")
        self._window = window
        self._state: dict[str, _Window | None] = dict.fromkeys(names)

    def retrack(self, senders: Iterable[str]) -> None:
        """Follow a config reload: keep the state of senders still configured, start new
        ones empty, forget removed ones (so the table stays bounded by the config)."""
        names = frozenset(senders)
        if len(names) > MAX_SENDERS:
            raise ValueError(f"{len(names)} senders; at most {MAX_SENDERS} are tracked")
        self._state = {name: self._state.get(name) for name in names}

    def tracks(self, sender: str) -> bool:
        return sender in self._state

    def check(self, sender: str, incarnation: int, seq: int) -> RejectReason | None:
        """Why (incarnation, seq) from `sender` must be dropped, or None if it is new."""
        state = self._state[sender]  # KeyError: caller skipped the unknown-sender check
        if state is None or incarnation > state.incarnation:
            return None
        if incarnation < state.incarnation:
            return RejectReason.STALE_INCARNATION
        if seq > state.top:
            return None
        behind = state.top - seq
        if behind >= self._window or state.seen >> behind & 1:
            return RejectReason.REPLAY
        return None

    def accept(self, sender: str, incarnation: int, seq: int) -> None:
        """Record a packet that passed `check` and every later check."""
        state = self._state[sender]
        mask = (1 << self._window) - 1
        if state is None or incarnation > state.incarnation:
            # First packet we accept from this incarnation: count every earlier number as
            # seen. After *our* restart the window is empty, and otherwise captured packets
            # just below this one would each be accepted once; losing a reordered packet at
            # a peer's start is the cheap price.
            self._state[sender] = _Window(incarnation, seq, mask)
            return
        assert incarnation == state.incarnation, "accept() without a passing check()"
        if seq > state.top:
            ahead = seq - state.top
            # A jump past the whole window clears it; never shift by an unbounded amount.
            state.seen = (state.seen << ahead | 1) & mask if ahead < self._window else 1
            state.top = seq
        else:
            behind = state.top - seq
            assert behind < self._window, "accept() without a passing check()"
            state.seen |= 1 << behind

    def incarnation(self, sender: str) -> int | None:
        """The newest incarnation accepted from `sender` (None before its first packet)."""
        state = self._state.get(sender)
        return None if state is None else state.incarnation
