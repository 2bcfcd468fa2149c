"""Test helpers: real servers on loopback (port 0), event recorders instead of sleeps."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypedDict

from websockets.asyncio.server import ServerConnection, serve

TIME_SCALE = float(os.environ.get("NBCHAT_TEST_TIME_SCALE", "1"))
"""Multiply every test wait by this on a slow machine (after websockets' test suite)."""
TIMEOUT = 10.0 * TIME_SCALE
"""The longest a test waits for one event before failing: the one value every test uses."""


class Reconnection(TypedDict):
    """Reconnection settings of ``ClientConfig``, typed so ``ChatClient(url, **FAST)`` checks."""

    reconnect_interval: float
    max_reconnect_interval: float
    stable_after: float


FAST: Reconnection = {
    "reconnect_interval": 0.01,
    "max_reconnect_interval": 0.05,
    "stable_after": 60.0,
}
"""Client settings that reconnect at once, for tests of reconnection (never resetting attempts)."""

Handler = Callable[[ServerConnection], Awaitable[None]]


@asynccontextmanager
async def scripted_server(handler: Handler) -> AsyncIterator[str]:
    """A plain websockets server running ``handler``, for behaviour the demo never shows."""
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"


async def free_port() -> int:
    """A loopback port that nothing listens on (bound, read, released)."""
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


class Recorder:
    """Collects a client's events so tests wait on them instead of sleeping."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[object, ...]]] = []
        self._changed = asyncio.Condition()

    def callback(self, name: str) -> Callable[..., None]:
        """A listener that records ``name`` with its arguments."""

        def record(*args: object) -> None:
            self.events.append((name, args))
            asyncio.get_running_loop().create_task(self._notify())

        return record

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def of(self, name: str) -> list[tuple[object, ...]]:
        """Arguments of every recorded ``name`` event, in order."""
        return [args for event, args in self.events if event == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = TIMEOUT) -> None:
        """Wait until ``name`` has been recorded ``count`` times."""

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.of(name)) >= count)

        await asyncio.wait_for(wait(), timeout)


def attach(client: object, *names: str) -> Recorder:
    """A Recorder listening to ``names`` on ``client``."""
    recorder = Recorder()
    for name in names or ("open", "close", "error", "message", "state"):
        client.on(name, recorder.callback(name))  # type: ignore[attr-defined]
    return recorder


def png(width: int = 2, height: int = 2, padding: int = 0) -> bytes:
    """A real PNG of ``width`` by ``height`` gray pixels (``padding`` zero bytes in a chunk of
    its own, for size bounds), built with zlib so no image library is needed."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    extra = chunk(b"tEXt", b"pad\0" + b"\0" * padding) if padding else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def best_cpu_times(
    smaller: Callable[[], object], larger: Callable[[], object], rounds: int = 3
) -> tuple[float, float]:
    """The least disturbed CPU time of ``smaller`` and of ``larger``, for tests of growth.

    The two run in turn, round after round, so a neighbour that slows the
    shared machine for a while slows both alike (one measured after the other
    once made a linear parser look quadratic in CI); CPU time of this process,
    not wall time, so waiting for a core costs nothing.
    """
    gc.collect()
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, work in enumerate((smaller, larger)):
            started = time.process_time()
            work()
            best[index] = min(best[index], time.process_time() - started)
    return best[0], best[1]
