"""The local admin socket: `gossipha standby|takeover|maintenance` talk to the agent here.

A unix stream socket (Observe.admin_socket, mode 0600). Each connection carries one JSON
line `{"command": "<AdminKind value>"}` and gets one JSON line back `{"ok": bool,
"detail": str}`. The peer's credentials are read with SO_PEERCRED: only root and the
agent's own uid are served; anything else is refused, logged and answered `ok: false`.
The server never holds a connection longer than `IO_TIMEOUT_S` or reads more than
`MAX_REQUEST_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from gossipha.aio import within
from gossipha.core.types import AdminKind

log = logging.getLogger(__name__)

IO_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 1024
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

AdminHandler = Callable[[AdminKind], Awaitable[str]]


class AdminError(Exception):
    """The command could not be delivered or was refused."""


class AgentNotRunning(AdminError):
    """No agent listens on the admin socket."""


@dataclass(frozen=True, slots=True)
class PeerCred:
    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class AdminReply:
    ok: bool
    detail: str


def peer_cred(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid, uid, gid)


def _encode(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


class AdminServer:
    """Serves admin commands on a unix socket; `handler` applies one (feeds the core).

    `handler` returns a short detail string; an exception from it is reported to the
    client as `ok: false` and logged, never raised into the server.
    """

    def __init__(
        self,
        path: Path,
        handler: AdminHandler,
        allowed_uids: Iterable[int] | None = None,
    ) -> None:
        self._path = path
        self._handler = handler
        self._allowed = frozenset({0, os.getuid()} if allowed_uids is None else allowed_uids)
        self._server: asyncio.Server | None = None

    @property
    def path(self) -> Path:
        return self._path

    async def setup(self) -> None:
        if self._server is not None:
            raise RuntimeError("AdminServer.setup() called twice")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        await self._remove_stale()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self._path), limit=MAX_REQUEST_BYTES
            )
        finally:
            os.umask(old_umask)
        os.chmod(self._path, 0o600)
        log.info("admin socket listening path=%s", self._path)

    async def _remove_stale(self) -> None:
        """Remove a socket file left by a dead agent; refuse if one is still answering."""
        try:
            st = os.lstat(self._path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise AdminError(f"{self._path}: exists and is not a socket")
        try:
            _, writer = await within(asyncio.open_unix_connection(str(self._path)), IO_TIMEOUT_S)
        except (ConnectionRefusedError, FileNotFoundError):
            self._path.unlink(missing_ok=True)
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        raise AdminError(f"{self._path}: another agent is listening")

    async def cleanup(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    async def __aenter__(self) -> AdminServer:
        try:
            await self.setup()
        except BaseException:
            await self.cleanup()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cleanup()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await within(self._one(reader, writer), IO_TIMEOUT_S)
            writer.write(_encode({"ok": reply.ok, "detail": reply.detail}))
            await within(writer.drain(), IO_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            log.warning("admin connection dropped error=%s", exc.__class__.__name__)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> AdminReply:
        sock = writer.get_extra_info("socket")
        try:
            cred = peer_cred(sock)
        except OSError as exc:
            log.warning("admin refused: no peer credentials error=%s", exc)
            return AdminReply(False, "refused: no peer credentials")
        if cred.uid not in self._allowed:
            log.warning("admin refused uid=%d pid=%d", cred.uid, cred.pid)
            return AdminReply(False, f"refused: uid {cred.uid} may not administer this agent")
        try:
            line = await reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            return AdminReply(False, "request too long")
        try:
            req = orjson.loads(line)
            kind = AdminKind(req["command"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("admin bad request uid=%d pid=%d", cred.uid, cred.pid)
            return AdminReply(False, "bad request")
        log.info("admin command=%s uid=%d pid=%d", kind.value, cred.uid, cred.pid)
        try:
            detail = await self._handler(kind)
        except Exception as exc:
            log.exception("admin handler failed command=%s", kind.value)
            return AdminReply(False, f"failed: {exc}")
        return AdminReply(True, detail)


async def send_admin(path: Path, kind: AdminKind, timeout_s: float = IO_TIMEOUT_S) -> AdminReply:
    """Send one command; AgentNotRunning when nobody listens, AdminError on a bad answer."""
    try:
        reader, writer = await within(asyncio.open_unix_connection(str(path)), timeout_s)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise AgentNotRunning(
            f"no gossipha agent on {path} ({exc.strerror or exc}); is it running?"
        ) from exc
    except PermissionError as exc:
        raise AdminError(f"{path}: permission denied (run as root or the agent's user)") from exc
    except TimeoutError as exc:
        raise AdminError(f"{path}: no answer within {timeout_s:g}s") from exc
    try:
        writer.write(_encode({"command": kind.value}))
        await within(writer.drain(), timeout_s)
        line = await within(reader.readline(), timeout_s)
    except TimeoutError as exc:
        raise AdminError(f"{path}: no answer within {timeout_s:g}s") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    try:
        raw = orjson.loads(line)
        return AdminReply(bool(raw["ok"]), str(raw.get("detail", "")))
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise AdminError(f"{path}: unexpected answer {line[:80]!r}") from exc
