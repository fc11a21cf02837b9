"""Small asyncio pieces the runtime shares.

`within`: asyncio.wait_for without the Python 3.11 flaw that made a task uncancellable.

In 3.11, when a task waiting in `asyncio.wait_for` is cancelled in the same loop turn as
the awaited operation completes, wait_for returns the result and the cancellation is lost
(CPython gh-86296, fixed in 3.12 by building wait_for on `asyncio.timeout`). A polling loop
(`while True: await wait_for(...); await sleep(...)`) then never ends: a lab test waiting
for a VIP watcher with a 0.5 s duration hung for ten minutes on it. `asyncio.timeout`
awaits in the calling task, whose pending cancellation is never dropped.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def within(aw: Awaitable[T], timeout_s: float | None) -> T:
    """`await aw`, or TimeoutError after `timeout_s` (None: no limit)."""
    async with asyncio.timeout(timeout_s):
        return await aw


async def pipe_to(protocol: asyncio.Protocol) -> tuple[asyncio.ReadTransport, int]:
    """A new pipe whose read end feeds `protocol`: the transport and the write end, which
    the caller hands to a child and then closes. Nothing leaks if the loop refuses it."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: protocol, os.fdopen(read_fd, "rb", buffering=0)
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    return transport, write_fd


class DatagramReader:
    """Hands every datagram a non-blocking socket receives to `handler(data, address)`,
    straight from the loop's readiness callback, with one reader registration for as long
    as it is entered.

    asyncio's `sock_recvfrom` registers and unregisters the reader around each datagram
    (two epoll_ctl calls and a failed read every time) and wakes a task to hand it over:
    for the pinger's replies, five a second at native timings, that was most of its cost.
    `create_datagram_endpoint` does the same job for UDP but does not take raw sockets.
    At most `batch` datagrams are read per callback, so a flood cannot hold the loop.

    An exception from `handler` goes to `on_failure` when given (its owner's task then
    ends with it), else to the loop's exception handler, as any callback's would.
    """

    def __init__(
        self,
        sock: socket.socket,
        size: int,
        handler: Callable[[bytes, Any], None],
        *,
        batch: int = 64,
        on_error: Callable[[OSError], None] | None = None,
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self._sock = sock
        self._size = size
        self._handler = handler
        self._batch = batch
        self._on_error = on_error
        self._on_failure = on_failure
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> DatagramReader:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._ready)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._loop = None

    def _ready(self) -> None:
        for _ in range(self._batch):
            try:
                data, address = self._sock.recvfrom(self._size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # A queued socket error (an ICMP error for a raw socket, a netlink
                # overrun): reported if asked, then read on at the next readiness.
                if self._on_error is not None:
                    self._on_error(exc)
                return
            try:
                self._handler(data, address)
            except Exception as exc:
                if self._on_failure is None:
                    raise
                self._on_failure(exc)
                return
