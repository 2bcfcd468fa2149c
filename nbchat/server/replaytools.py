"""Client tools in a replay: which recorded calls run in the live client, and their outcomes.

A recorded call of a client tool runs again in the live client (the notebook's
function really runs) and its outcome is compared with the recorded one. The
exception is an MCP server's tool (an outside system, like the model): a
recording made while ``client.mcp(...)`` ran holds the server's tool list
(:mod:`nbchat.mcpspec`); under a replay the client registers those tools
without starting the server and does not declare them, so their calls are
answered from the recording. A client that runs the server live anyway
(``mcp(..., live=True)``) declares them, and they run and are compared like any
client tool. A kernel function the recording called but the live client no
longer offers is not an MCP tool: its call still fails, as a difference.
"""

from __future__ import annotations

import json

from ..mcpspec import recorded_mcp_tools
from ..protocol import ToolCall, ToolCallMessage, ToolResultMessage
from ..redact import redact_text, redact_value
from ..transcript import Transcript
from .responder import ClientTools

__all__ = ["live_result", "outcome_text", "recorded_mcp_names", "run_client_calls"]

_MAX_RESULT_QUOTE = 200


def recorded_mcp_names(transcript: Transcript) -> frozenset[str]:
    """The names of the MCP tools a transcript's recording added."""
    return frozenset(
        str(tool.get("name"))
        for entry in recorded_mcp_tools(transcript.events)
        for tool in entry["tools"]
        if isinstance(tool, dict)
    )


async def run_client_calls(
    message: ToolCallMessage,
    tools: ClientTools,
    live: dict[str, ToolCall],
    mcp_tools: frozenset[str] = frozenset(),
) -> None:
    """Run the client tools a replayed ``tool_call`` announces, in order, in the live client.

    A recorded MCP tool the client does not declare is left to the recording.
    """
    for call in message.tool_calls:
        if call.runs_in != "client":
            continue
        if call.name in mcp_tools and call.name not in tools.available:
            continue
        live[call.id] = await tools.call(call.name, call.arguments, call_id=call.id)


def live_result(
    recorded: ToolResultMessage, live: dict[str, ToolCall]
) -> tuple[ToolResultMessage, list[tuple[ToolCall, ToolCall]]]:
    """The recorded result with live outcomes in place, and the (recorded, live) that differ."""
    calls: list[ToolCall] = []
    differences: list[tuple[ToolCall, ToolCall]] = []
    for call in recorded.tool_calls:
        outcome = live.pop(call.id, None)
        if outcome is None:
            calls.append(call)
            continue
        calls.append(outcome)
        if (outcome.status, redact_value(outcome.result)) != (
            call.status,
            redact_value(call.result),
        ):
            differences.append((call, outcome))
    return ToolResultMessage(tool_calls=calls), differences


def outcome_text(call: ToolCall) -> str:
    """A call's outcome as a difference quotes it: status and result, redacted, cut."""
    text = redact_text(json.dumps(call.result, ensure_ascii=False, default=repr))
    if len(text) > _MAX_RESULT_QUOTE:
        text = text[: _MAX_RESULT_QUOTE - 3] + "..."
    return f"{call.status} {text}"
