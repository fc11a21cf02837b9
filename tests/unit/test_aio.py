"""`within` keeps a cancellation that arrives as the awaited operation completes;
`DatagramReader` hands over every datagram from one reader registration."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gossipha.aio import DatagramReader, within


async def _cancel_as_it_completes(wait: Callable[[Awaitable[Any], float], Awaitable[Any]]) -> str:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()

    async def waiter() -> int:
        return await wait(fut, 10.0)

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # the task is now waiting on fut
    fut.set_result(1)  # the same loop turn: done, and cancelled
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "result"


async def test_a_cancellation_racing_completion_is_kept() -> None:
    assert await _cancel_as_it_completes(within) == "cancelled"


async def test_the_race_is_real_for_wait_for_on_this_python() -> None:
    """Why `within` exists: on Python 3.11 asyncio.wait_for drops that cancellation."""
    import sys

    outcome = await _cancel_as_it_completes(asyncio.wait_for)
    if sys.version_info < (3, 12):
        assert outcome == "result"
    else:
        assert outcome == "cancelled"


async def test_times_out_and_passes_results() -> None:
    assert await within(asyncio.sleep(0, result=7), 1.0) == 7
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(1.0), 0.01)
    assert await within(asyncio.sleep(0, result=8), None) == 8


async def test_datagram_reader_hands_over_every_datagram_until_it_is_left() -> None:
    loop = asyncio.get_running_loop()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        got: list[tuple[bytes, Any]] = []
        with DatagramReader(rx, 64, lambda data, addr: got.append((data, addr)), batch=2):
            for i in range(5):  # more than one batch: the reader is called again
                tx.sendto(b"d%d" % i, rx.getsockname())
            for _ in range(100):
                if len(got) == 5:
                    break
                await asyncio.sleep(0.01)
        assert [d for d, _ in got] == [b"d0", b"d1", b"d2", b"d3", b"d4"]
        assert got[0][1] == ("127.0.0.1", tx.getsockname()[1])
        tx.sendto(b"late", rx.getsockname())
        await asyncio.sleep(0.05)
        assert len(got) == 5, "read after the reader was left"
        assert rx.recv(64) == b"late"
        assert not loop.remove_reader(rx.fileno()), "the reader was left registered"


async def _until(cond: Callable[[], bool]) -> None:
    for _ in range(100):
        if cond():
            return
        await asyncio.sleep(0.01)


async def test_datagram_reader_reports_a_queued_socket_error_and_reads_on() -> None:
    """A UDP socket connected to a closed port gets the kernel's ICMP port-unreachable
    as a queued error: `on_error` hears it, and datagrams after it still come in."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there now
        rx.bind(("127.0.0.1", 0))
        rx.connect(("127.0.0.1", port))
        rx.setblocking(False)
        errors: list[OSError] = []
        got: list[bytes] = []
        reader = DatagramReader(rx, 64, lambda d, _a: got.append(d), on_error=errors.append)
        with reader:
            rx.send(b"to nobody")
            await _until(lambda: bool(errors))
            assert [type(e) for e in errors] == [ConnectionRefusedError]
            tx.bind(("127.0.0.1", port))  # the connected peer exists now
            tx.sendto(b"after", rx.getsockname())
            await _until(lambda: bool(got))
        assert got == [b"after"]


async def test_datagram_reader_hands_a_handler_error_to_on_failure() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        failures: list[Exception] = []

        def handler(data: bytes, _addr: Any) -> None:
            raise ValueError(data.decode())

        with DatagramReader(rx, 64, handler, on_failure=failures.append):
            tx.sendto(b"bad", rx.getsockname())
            tx.sendto(b"worse", rx.getsockname())
            await _until(lambda: bool(failures))
            await asyncio.sleep(0.05)
        # The first failure stops that callback's reading: its owner is ending anyway.
        assert [str(f) for f in failures][:1] == ["bad"]
