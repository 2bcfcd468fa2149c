"""Running tools: the one executor the server's model bridge and the client both use.

A small asyncio shell over :mod:`nbchat.toolspec` (which decides, purely, which
tool a call names, whether its arguments fit, and how its result is bounded).
It imports neither the client nor the server, so both can use it; so does
the connection to an MCP server (:mod:`nbchat.tools.mcp`, imported on use: it
needs the ``mcp`` extra), whose tools a client or the server's bridge offers.
"""

from __future__ import annotations

from .executor import THREADS, Approve, execute, run, still_running

__all__ = ["THREADS", "Approve", "execute", "run", "still_running"]
