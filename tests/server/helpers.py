"""Helpers for server tests: raw protocol clients and the hooks tests use to break connections.

The hooks live here, not on :class:`~nbchat.server.ChatServer`: only tests
drop connections on purpose. They use the server's public ``connections``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from nbchat.parsing import parse_server_message
from nbchat.server import ChatServer
from tests.helpers import TIMEOUT

__all__ = [
    "close_connections",
    "drop_connections",
    "numbers",
    "recv",
    "reply",
    "send",
    "text",
]


async def drop_connections(server: ChatServer) -> None:
    """Abort every connection's TCP transport, without a close frame: clients see 1006."""
    dropped = server.connections
    for connection in dropped:
        connection.transport.abort()
    await asyncio.gather(*(connection.wait_closed() for connection in dropped))


async def close_connections(server: ChatServer, code: int = 1001, reason: str = "") -> None:
    """Close every connection with a close frame carrying ``code`` and ``reason``."""
    await asyncio.gather(*(connection.close(code, reason) for connection in server.connections))


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, decoded, checked to be a valid protocol v1 server message."""
    frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
    parse_server_message(frame)
    data: dict[str, Any] = json.loads(frame)
    return data


async def send(ws: ClientConnection, **fields: Any) -> None:
    """Send one JSON object frame."""
    await ws.send(json.dumps(fields))


async def reply(ws: ClientConnection, message_id: str) -> list[dict[str, Any]]:
    """Frames answering ``message_id`` up to and including its done or error."""
    frames = []
    while True:
        frame = await recv(ws)
        if frame.get("reply_to") == message_id:
            frames.append(frame)
            if frame["type"] in ("done", "error"):
                return frames


def text(frames: list[dict[str, Any]]) -> str:
    """The reply text of some frames."""
    return "".join(f["response"] for f in frames if f["type"] == "token")


def numbers(n: int) -> str:
    """The demo agent's reply to "count to n"."""
    return " ".join(str(i) for i in range(1, n + 1))
