"""Why a datagram was dropped, how often, and when it is worth a log line.

Every packet from the network is hostile until verified, so rejection is the normal,
expected outcome for junk: it is a value (`Reject`), counted per reason for metrics, and
logged at most once per (reason, peer) per interval so a flood cannot become a log storm.
Everything here is pure: time arrives as `now_s`; nothing reads a clock or writes a log.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass


class RejectReason(enum.Enum):
    """One value per check in `Decoder.decode`, in the order the checks run."""

    TOO_LARGE = "too_large"  # longer than MAX_PACKET_BYTES; checked before reading anything
    MALFORMED = "malformed"  # too short, bad lengths, trailing bytes, empty sender name
    BAD_MAGIC = "bad_magic"  # not a gossipha packet (stray traffic on the port)
    BAD_VERSION = "bad_version"  # a protocol major version this build does not speak
    WRONG_CLUSTER = "wrong_cluster"  # another cluster on the same network or port
    UNKNOWN_SENDER = "unknown_sender"  # sender is not a configured node; no state is kept
    UNKNOWN_KEY = "unknown_key"  # key id not in our keyring (key rotation skipped a step?)
    BAD_MAC = "bad_mac"  # forged or corrupted, or the same key id with a different secret
    UNSIGNED = "unsigned"  # no MAC while the keyring enforces authentication
    BAD_CRC = "bad_crc"  # unsigned packet whose CRC32 does not match: corrupted in transit
    LOOPBACK = "loopback"  # our own packet came back (broadcast, multicast loop)
    NAME_CONFLICT = "name_conflict"  # authentic packet with our name but not our incarnation
    STALE_INCARNATION = "stale_incarnation"  # from an earlier start of the sender
    REPLAY = "replay"  # sequence number already seen, or older than the window
    BAD_BODY = "bad_body"  # authentic, but the body is not a JSON object


@dataclass(frozen=True, slots=True)
class Reject:
    """A dropped datagram and why.

    `sender` is set only once the name matched a configured node, so a log line never
    carries an attacker-chosen string; `key_id` only once it was read from a valid header.
    """

    reason: RejectReason
    sender: str | None = None
    key_id: int | None = None


class RejectCounter:
    """Rejections per reason, for a metrics collector to read; bounded by the enum."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[RejectReason, int] = dict.fromkeys(RejectReason, 0)

    def add(self, reject: Reject) -> None:
        self._counts[reject.reason] += 1

    def __getitem__(self, reason: RejectReason) -> int:
        return self._counts[reason]

    def __iter__(self) -> Iterator[RejectReason]:
        return iter(self._counts)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def snapshot(self) -> Mapping[RejectReason, int]:
        """A copy, so a collector never sees a count change half-way through a scrape."""
        return dict(self._counts)


@dataclass(frozen=True, slots=True)
class RejectLogLine:
    """What the runtime should log: one rejection, plus how many like it were not logged."""

    reason: RejectReason
    sender: str | None
    suppressed: int  # rejects of this (reason, sender) dropped silently since the last line
    summary: bool = False  # True: no new reject, only the count of suppressed ones (flush)

    def render(self) -> str:
        """key=value form, as the rest of the agent logs."""
        peer = self.sender if self.sender is not None else "-"
        what = "rejects suppressed" if self.summary else "packet rejected"
        return f"{what} reason={self.reason.value} peer={peer} suppressed={self.suppressed}"


class RejectLogLimiter:
    """At most one log line per (reason, sender) per `interval_s`, then a count of the rest.

    Keys are bounded: `sender` is None or a configured node name (see `Reject`), so the
    table has at most len(RejectReason) x (nodes + 1) entries however hostile the traffic.
    """

    __slots__ = ("_interval_s", "_last_s", "_suppressed")

    def __init__(self, interval_s: float = 60.0) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self._interval_s = interval_s
        self._last_s: dict[tuple[RejectReason, str | None], float] = {}
        self._suppressed: dict[tuple[RejectReason, str | None], int] = {}

    def observe(self, reject: Reject, now_s: float) -> RejectLogLine | None:
        """Return a line to log now, or None when one was logged for this key recently."""
        key = (reject.reason, reject.sender)
        last = self._last_s.get(key)
        if last is not None and now_s - last < self._interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last_s[key] = now_s
        return RejectLogLine(reject.reason, reject.sender, self._suppressed.pop(key, 0))

    def flush(self, now_s: float) -> list[RejectLogLine]:
        """Summaries for keys whose interval has passed with rejects still unreported.

        Call it on a timer so the count of a burst is logged even if the burst stopped.
        """
        lines: list[RejectLogLine] = []
        for key, count in list(self._suppressed.items()):
            if now_s - self._last_s[key] >= self._interval_s:
                del self._suppressed[key]
                self._last_s[key] = now_s
                lines.append(RejectLogLine(key[0], key[1], count, summary=True))
        return lines
