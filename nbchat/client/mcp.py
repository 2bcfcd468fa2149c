"""MCP servers as client tools: ``client.mcp("mcp-server-time")``.

The connection (start, list, call, restart, close) is
:class:`nbchat.tools.mcp.McpServer`, shared with the server's bridge; this
module makes a client's tools of it. Each listed tool becomes a
:class:`~nbchat.client.tools.ClientTool` of the server's own JSON Schema whose
card says where it runs (``MCP: time``). Approval by default follows the
annotations: a tool not ``readOnlyHint``, or ``destructiveHint``, waits for
the client's approver (``confirm=None``); ``confirm=True`` asks for every
tool, ``confirm=False`` for none.

Replay (``$NBCHAT_REPLAY``, :func:`nbchat.config.replay_instead`): an MCP server
is an outside system, like the model, so it is not started; its tools are the
recorded ones (:func:`replayed_tools`) and their calls are answered by the
replay server from the recording (:mod:`nbchat.server.replaytools`).
``live=True`` starts it anyway.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from ..exceptions import ToolError
from ..mcpspec import MCP_TOOLS_PATH, Target, confirm_default
from ..schematool import schema_spec
from ..tools.mcp import McpServer
from .tools import ClientTool

__all__ = ["client_tools", "replayed_tools"]


def client_tools(server: McpServer, confirm: bool | None, prefix: str | None) -> list[ClientTool]:
    """The server's listed tools as client tools: its schema, approval, where they run."""
    return [
        ClientTool.from_spec(
            tool.spec, confirm=confirm_default(tool.annotations, confirm), where=server.where
        )
        for tool in server.specs(prefix)
    ]


async def replayed_tools(
    target: Target, confirm: bool | None, prefix: str | None
) -> list[ClientTool]:
    """Under a replay: the server's tools as recorded, asked of the replay server; none start."""
    from ..config import replay_instead

    url = replay_instead()
    assert url is not None
    address = re.sub(r"^ws", "http", url.split("?")[0])
    address = address.rsplit("/", 1)[0] + MCP_TOOLS_PATH

    def fetch() -> Any:
        import urllib.request

        with urllib.request.urlopen(address, timeout=5) as response:  # the replay server's
            return json.loads(response.read().decode("utf-8"))

    try:
        recorded = await asyncio.to_thread(fetch)
    except (OSError, ValueError) as exc:
        raise ToolError(
            f"the replay server gave no MCP tool list for {target.shown!r} ({exc}): "
            "pass live=True to start the server"
        ) from None
    entries = [e for e in recorded if isinstance(e, dict)]
    entry = next((e for e in entries if e.get("command") == target.shown), None) or next(
        (e for e in entries if e.get("label") == target.label), None
    )
    if entry is None:
        raise ToolError(
            f"the recording holds no tool list of the MCP server {target.shown!r}: record the "
            "notebook again with the server installed, or pass live=True to start it"
        )
    made = []
    for tool in entry.get("tools", []):
        name = str(tool["name"])

        async def replayed(**arguments: Any) -> Any:
            raise ToolError(f"the MCP server {target.label} is not started under a replay")

        spec = schema_spec(
            replayed,
            tool.get("parameters") or {},
            name=name,
            description=str(tool.get("description") or ""),
        )
        ask = bool(tool.get("confirm")) if confirm is None else confirm
        where = str(tool.get("where") or f"MCP: {target.label}")
        made.append(ClientTool.from_spec(spec, confirm=ask, where=where))
    return made
