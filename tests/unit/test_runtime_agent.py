"""The agent's pure parts: message framing through the real codec, the incarnation file,
the order of inputs after a stall, respawn backoff and the log line format."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from gossipha.config.load import Loaded
from gossipha.core.types import (
    Heartbeat,
    Input,
    LeaseReply,
    LeaseRequest,
    NodeStatus,
    Output,
    Resumed,
    Send,
    Stalled,
    Tick,
)
from gossipha.runtime import incarnation
from gossipha.runtime.agent import Agent, AgentOptions, frame, unframe
from gossipha.runtime.logs import kv
from gossipha.runtime.respawn import FIRST_BACKOFF_S, MAX_BACKOFF_S, next_backoff_s
from gossipha.runtime.signals import AgentSignals
from gossipha.sim.harness import make_config
from gossipha.wire.codec import Decoder, Encoder, Packet, cluster_id
from gossipha.wire.keyring import Keyring


def _pair() -> tuple[Encoder, Decoder]:
    cfg = make_config(2)
    keyring = Keyring.from_auth(cfg.auth)
    cid = cluster_id(cfg.cluster_name)
    enc = Encoder(cluster=cid, node="n0", incarnation=7, keyring=keyring)
    dec = Decoder(cluster=cid, node="n1", incarnation=9, senders=["n0", "n1"], keyring=keyring)
    return enc, dec


@pytest.mark.parametrize(
    "message",
    [
        Heartbeat(NodeStatus("n0", 7, 3, ping_count=1)),
        LeaseRequest("g0", 4, 12),
        LeaseReply("g0", 4, 12, granted=False, holder="n1", max_epoch=5, busy_s=1.5),
    ],
)
def test_a_message_survives_encoder_and_decoder(message: Any) -> None:
    enc, dec = _pair()
    packet = dec.decode(enc.encode(frame(Send("n1", message))), 0.0)
    assert isinstance(packet, Packet) and packet.sender == "n0"
    assert unframe(packet.body, "n1") == message


def test_a_message_for_another_node_is_ignored() -> None:
    body = frame(Send("n2", LeaseRequest("g0", 1, 1)))
    assert unframe(body, "n1") is None
    assert unframe(body, "n2") == LeaseRequest("g0", 1, 1)


def test_bad_bodies_raise_value_error() -> None:
    with pytest.raises(ValueError):
        unframe({"t": "nope", "to": "n1"}, "n1")
    with pytest.raises(ValueError):
        unframe({"t": "lreq", "to": 5}, "n1")
    with pytest.raises(ValueError):
        unframe({"t": "lreq", "g": "g0", "e": 0, "q": 1}, "n1")  # epoch 0 is invalid


def test_incarnation_goes_up_even_when_the_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = incarnation.incarnation_path(tmp_path / "state", "c", "n/0")
    assert path.parent == tmp_path / "state" and "/" not in path.name
    monkeypatch.setattr(incarnation.time, "time_ns", lambda: 5_000_000_000_000)
    first = incarnation.new_incarnation(path)
    assert first == 5_000_000_000 and incarnation.read_incarnation(path) == first
    monkeypatch.setattr(incarnation.time, "time_ns", lambda: 1_000_000_000_000)  # stepped back
    second = incarnation.new_incarnation(path)
    assert second == first + 1 and incarnation.read_incarnation(path) == second


def test_unwritable_state_still_gives_an_incarnation(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert incarnation.new_incarnation(blocker / "sub" / "x.inc") > 0


class _FakeLoop:
    def __init__(self) -> None:
        self.now_s = 100.0

    def time(self) -> float:
        return self.now_s


class _Recorder:
    done = False

    def __init__(self) -> None:
        self.events: list[tuple[float, Input]] = []

    def step(self, now_s: float, event: Input) -> Output:
        self.events.append((now_s, event))
        return Output(next_wakeup_s=now_s + 0.01)


def _agent() -> tuple[Agent, _FakeLoop, _Recorder]:
    cfg = make_config(2)
    a = Agent(Loaded(cfg, ()), AgentOptions(Path("unused")))
    loop, rec = _FakeLoop(), _Recorder()
    a._loop = loop  # type: ignore[assignment]
    a._node = rec  # type: ignore[assignment]
    return a, loop, rec


def test_after_a_pause_stalled_and_resumed_come_before_anything_else() -> None:
    a, loop, rec = _agent()
    a._feed(Tick())
    loop.now_s += 0.02  # on time
    a._feed(Tick())
    assert [type(e) for _, e in rec.events] == [Tick, Tick]
    rec.events.clear()
    loop.now_s += 5.0  # SIGSTOP ... SIGCONT: a datagram is the first thing to arrive
    a._feed(LeaseRequest("g0", 1, 1))  # type: ignore[arg-type]
    kinds = [type(e) for _, e in rec.events]
    assert kinds == [Stalled, Resumed, LeaseRequest]
    stalled = rec.events[0][1]
    assert isinstance(stalled, Stalled) and math.isclose(stalled.duration_s, 5.0)
    assert a.counters.stalls == 1
    rec.events.clear()
    loop.now_s += 0.01
    a._feed(Tick())
    assert [type(e) for _, e in rec.events] == [Tick]


def test_the_wakeup_follows_the_core_capped_at_a_quarter_keepalive() -> None:
    a, loop, _rec = _agent()
    a._feed(Tick())
    assert math.isclose(a._wakeup_s, loop.now_s + 0.01)


def test_closing_agent_ignores_inputs() -> None:
    a, _loop, rec = _agent()
    a._closing = True
    a._feed(Tick())
    assert rec.events == []


def test_respawn_backoff_doubles_to_a_cap_and_resets_after_a_healthy_run() -> None:
    b = next_backoff_s(0.0, 0.1)
    assert b == FIRST_BACKOFF_S
    seen = [b]
    for _ in range(10):
        b = next_backoff_s(b, 0.1)
        seen.append(b)
    assert seen[:3] == [1.0, 2.0, 4.0] and max(seen) == MAX_BACKOFF_S
    assert next_backoff_s(MAX_BACKOFF_S, 120.0) == FIRST_BACKOFF_S


def test_log_lines_are_key_value() -> None:
    assert kv("peer_dead", peer="n1", detail="silent 2s", group=None) == (
        'peer_dead peer=n1 detail="silent 2s"'
    )
    assert kv("x", a="", b='q"uote') == 'x a="" b="q\\"uote"'


async def test_a_reload_with_a_broken_config_keeps_the_running_keys(tmp_path: Path) -> None:
    cfg = make_config(2)
    a = Agent(Loaded(cfg, ()), AgentOptions(tmp_path / "missing-ha.d"))
    enc, dec = _pair()
    a._encoder, a._decoder = enc, dec
    before = enc.keyring
    await a._reload()
    assert enc.keyring is before and dec.keyring is before
    assert a.config is cfg


async def test_a_second_stop_signal_stops_at_once_and_the_first_one_is_bounded() -> None:
    calls: list[str] = []

    async def reload() -> None:
        calls.append("reload")

    async with asyncio.TaskGroup() as tg:
        signals = AgentSignals(
            timeout_s=0.01,
            hand_over=lambda: calls.append("hand_over"),
            stop_now=lambda: calls.append("stop_now"),
            reload=reload,
            spawn=lambda coro, name: tg.create_task(coro, name=name),
        )
        signals._on_terminate("SIGTERM")
        assert calls == ["hand_over"]
        await asyncio.sleep(0.05)  # the handover did not end the agent in time
        assert calls == ["hand_over", "stop_now"]
        signals._on_terminate("SIGINT")
        signals._on_hangup()
    assert calls == ["hand_over", "stop_now", "stop_now", "reload"]


class _Wanting:
    """A core that asks to be woken `after_s` after each step, and records its steps."""

    done = False

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self.events: list[tuple[float, Input]] = []

    def step(self, now_s: float, event: Input) -> Output:
        self.events.append((now_s, event))
        return Output(next_wakeup_s=now_s + self.after_s)


def _agent_with(core: _Wanting) -> Agent:
    """An agent of a two-node config whose core is `core`, stepped once with a Tick."""
    a = Agent(Loaded(make_config(2), ()), AgentOptions(Path("unused")))
    a._loop = asyncio.get_running_loop()
    a._node = core  # type: ignore[assignment]
    a._feed(Tick())
    return a


async def test_the_ticker_ticks_only_at_the_wakeup_the_last_step_asked_for() -> None:
    cfg = make_config(2)
    # keepalive 2 s: the runtime's cap on the wakeup (a keepalive) stays out of the way.
    cfg = dataclasses.replace(cfg, timings=dataclasses.replace(cfg.timings, keepalive_s=2.0))
    a = Agent(Loaded(cfg, ()), AgentOptions(Path("unused")))
    loop = asyncio.get_running_loop()
    core = _Wanting(0.2)
    a._loop = loop
    a._node = core  # type: ignore[assignment]
    a._feed(Tick())
    ticker = asyncio.create_task(a._ticker())
    try:
        # Steps every 20 ms push the wakeup 200 ms ahead each time: no Tick in between.
        for _ in range(6):
            await asyncio.sleep(0.02)
            a._feed(LeaseRequest("g0", 1, 1))  # type: ignore[arg-type]
        assert [type(e) for _, e in core.events[1:]] == [LeaseRequest] * 6
        last_s = core.events[-1][0]
        # Then silence: one Tick, no earlier than the last step's wakeup.
        await asyncio.sleep(0.35)
        ticks = [at_s for at_s, e in core.events if isinstance(e, Tick)][1:]
        assert ticks and ticks[0] >= last_s + 0.2
        # A step asking for an earlier wakeup brings the Tick forward.
        core.after_s = 0.005
        before = len(core.events)
        a._feed(LeaseRequest("g0", 1, 1))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        assert any(isinstance(e, Tick) for _, e in core.events[before + 1 :])
    finally:
        ticker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ticker
    assert a._tick_timer is None


class _Failing(_Wanting):
    """A core whose Tick raises: a bug in a step."""

    def step(self, now_s: float, event: Input) -> Output:
        if isinstance(event, Tick) and self.events:
            raise RuntimeError("bug in a step")
        return super().step(now_s, event)


async def test_a_tick_step_that_raises_ends_the_ticker_with_the_error() -> None:
    """Ticks run in the timer's callback: the error must still reach the TaskGroup."""
    core = _Failing(0.01)
    a = _agent_with(core)
    ticker = asyncio.create_task(a._ticker())
    with pytest.raises(RuntimeError, match="bug in a step"):
        await asyncio.wait_for(ticker, 2.0)
    assert a._tick_timer is None and a._tick_failed is None


async def test_a_closing_agent_stops_re_arming_the_tick() -> None:
    """No step runs while closing, so the wakeup never moves: re-arming it would fire the
    timer on every pass of the loop until the ticker is cancelled."""
    core = _Wanting(0.01)
    a = _agent_with(core)
    ticker = asyncio.create_task(a._ticker())
    try:
        await asyncio.sleep(0.05)
        assert a._tick_timer is not None
        a._closing = True
        await asyncio.sleep(0.05)
        assert a._tick_timer is None, "the tick was re-armed while closing"
    finally:
        ticker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ticker


async def test_riders_take_their_turn_at_each_tick_after_its_step() -> None:
    """The pinger's `ride` is offered every Tick, after the step (its heartbeats first)."""
    core = _Wanting(0.02)
    a = _agent_with(core)
    offers: list[tuple[float, int]] = []
    nexts: list[float] = []

    def ride(now_s: float, next_s: float) -> None:
        offers.append((now_s, len(core.events)))
        nexts.append(next_s - now_s)

    a._tick_riders.append(ride)
    ticker = asyncio.create_task(a._ticker())
    try:
        await asyncio.sleep(0.15)
    finally:
        ticker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ticker
    ticks = [at_s for at_s, e in core.events if isinstance(e, Tick)][1:]
    assert len(offers) == len(ticks) >= 3
    # Each offer came after its tick's step, at that wake-up.
    assert [n for _, n in offers] == list(range(2, 2 + len(offers)))
    assert all(0 <= now_s - at_s < 0.01 for (now_s, _), at_s in zip(offers, ticks, strict=True))
    # ... told when the next tick comes: the wakeup the step asked for, 20 ms on.
    assert all(0.01 < ahead_s <= 0.02 for ahead_s in nexts), nexts
