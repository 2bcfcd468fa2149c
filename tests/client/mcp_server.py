"""An MCP stdio server of the repository's own, for the tests: `python tests/client/mcp_server.py`.

Built with the official SDK's ``MCPServer`` (FastMCP in mcp 1.x). Its tools: a
read-only one (``lookup``), a destructive one (``erase``), one with an enum
parameter (``paint``) and one with a nested object (``place``); ``grow`` adds a
tool and sends ``notifications/tools/list_changed``; ``crash`` ends the process;
``slow`` sleeps; ``fail`` raises (an MCP error result); ``picture`` returns an image.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Literal

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel

server = MCPServer("nbchat-test")
READ_ONLY = ToolAnnotations(read_only_hint=True)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True)

ERASED: list[str] = []


class Point(BaseModel):
    """A point on the plane."""

    x: int
    y: int


class Placement(BaseModel):
    """Where a label goes."""

    label: str
    at: Point


@server.tool(annotations=READ_ONLY)
def lookup(key: str) -> str:
    """Look up a key (read-only)."""
    return f"value of {key}"


@server.tool(annotations=DESTRUCTIVE)
def erase(path: str) -> str:
    """Erase a path (destructive; it only pretends)."""
    ERASED.append(path)
    return f"erased {path}"


@server.tool(annotations=READ_ONLY)
def paint(color: Literal["red", "green", "blue"]) -> str:
    """Paint in one of three colours."""
    return f"painted {color}"


@server.tool(annotations=READ_ONLY)
def place(placement: Placement) -> dict[str, object]:
    """Place a label at a point (a nested object); returns structured content."""
    return {"label": placement.label, "x": placement.at.x, "y": placement.at.y}


@server.tool(annotations=READ_ONLY)
async def grow(ctx: Context) -> str:
    """Add the tool ``extra`` and tell the client the list changed."""

    def extra() -> str:
        """A tool added at run time."""
        return "extra"

    server.add_tool(extra, annotations=READ_ONLY)
    await ctx.session.send_tool_list_changed()
    return "grown"


@server.tool(annotations=READ_ONLY)
def crash() -> str:
    """End the server's process at once."""
    sys.stdout.flush()
    os._exit(3)


@server.tool(annotations=READ_ONLY)
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool(annotations=READ_ONLY)
def fail() -> str:
    """Raise: the client gets the server's message as an error."""
    raise ValueError("the disk is on fire")


@server.tool(annotations=READ_ONLY)
def picture() -> Image:
    """A one-pixel PNG."""
    return Image(data=bytes.fromhex(_PNG), format="png")


@server.tool(annotations=READ_ONLY)
def noop(x: int) -> int:
    """Return x (the benchmark's MCP tool)."""
    return x


@server.tool(annotations=READ_ONLY)
def pid() -> int:
    """This server's process id."""
    return os.getpid()


_PNG = (
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)

if __name__ == "__main__":
    if "--hang" in sys.argv:  # never answers the handshake
        import time

        time.sleep(3600)
    if "--die" in sys.argv:
        print("mcp_server: refusing to start (--die)", file=sys.stderr)
        raise SystemExit(2)
    server.run("stdio")
