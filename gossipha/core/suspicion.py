"""Suspicion timers (SWIM/Lifeguard, memberlist suspicion.go) as pure arithmetic.

A suspect's timeout starts at `max_s` and shrinks with the log of independent
confirmations towards `min_s`: each other accuser is evidence the suspect is really gone,
while a lone accuser (perhaps the broken one) waits longest, giving the suspect time to
hear the accusation and refute it with a higher incarnation.

    timeout(k) = max(min_s, max_s - (max_s - min_s) * log(k + 1) / log(K + 1))

k = independent confirmations beyond the first accuser (duplicates and the suspect itself
do not count), K = expected confirmations. With K == 0 the timeout is min_s.

Public API::

    suspicion_timeout_s(confirmations, expected, min_s, max_s) -> float
    class Suspicion:
        __init__(subject, incarnation, accuser, start_s, expected, min_s, max_s)
        confirm(accuser) -> bool      # True when it was a new independent confirmation
        confirmations: int; accusers: frozenset[str]; deadline_s: float
"""

from __future__ import annotations

import math


def suspicion_timeout_s(confirmations: int, expected: int, min_s: float, max_s: float) -> float:
    """memberlist's remainingSuspicionTime without the elapsed part: total timeout."""
    assert confirmations >= 0 and expected >= 0 and 0.0 <= min_s <= max_s
    if expected == 0:
        return min_s
    frac = math.log(confirmations + 1.0) / math.log(expected + 1.0)
    return max(min_s, max_s - (max_s - min_s) * frac)


class Suspicion:
    """One accusation of `subject` at `incarnation`; counts distinct further accusers."""

    __slots__ = (
        "_accusers",
        "_expected",
        "_max_s",
        "_min_s",
        "accuser",
        "incarnation",
        "start_s",
        "subject",
    )

    def __init__(
        self,
        subject: str,
        incarnation: int,
        accuser: str,
        start_s: float,
        expected: int,
        min_s: float,
        max_s: float,
    ) -> None:
        assert accuser != subject, "a node never accuses itself"
        self.subject = subject
        self.incarnation = incarnation
        self.accuser = accuser
        self.start_s = start_s
        self._expected = expected
        self._min_s = min_s
        self._max_s = max_s
        self._accusers: set[str] = {accuser}

    def confirm(self, accuser: str) -> bool:
        """Count `accuser` once; beyond `expected` more confirmations change nothing."""
        if accuser == self.subject or accuser in self._accusers:
            return False
        if self.confirmations >= self._expected:
            return False
        self._accusers.add(accuser)
        return True

    @property
    def confirmations(self) -> int:
        return len(self._accusers) - 1

    @property
    def accusers(self) -> frozenset[str]:
        return frozenset(self._accusers)

    @property
    def timeout_s(self) -> float:
        return suspicion_timeout_s(self.confirmations, self._expected, self._min_s, self._max_s)

    @property
    def deadline_s(self) -> float:
        return self.start_s + self.timeout_s
