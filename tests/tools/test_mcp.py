"""The connection to an MCP server on its own, as client and server both use it (real servers)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nbchat import ToolError
from nbchat.mcpspec import parse_target
from nbchat.tools import execute
from nbchat.tools.mcp import MAX_RESTARTS, McpServer
from tests.helpers import alive

pytestmark = pytest.mark.loopback

OWN = [sys.executable, str(Path(__file__).parents[1] / "client" / "mcp_server.py")]
TIME = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]


@pytest.fixture
async def own() -> AsyncIterator[McpServer]:
    """The repository's test MCP server, started; closed after the test."""
    server = McpServer(parse_target(OWN), afresh="restart the test")
    await server.start()
    yield server
    await server.close()


@pytest.mark.timeout(60)
async def test_specs_keep_the_servers_schema_and_annotations(own: McpServer) -> None:
    """Each listed tool is a spec of its own JSON Schema, named with the prefix, with its hints."""
    listed = {tool.spec.name: tool for tool in own.specs("x_")}
    assert listed["x_paint"].spec.parameters()["properties"]["color"]["enum"] == [
        "red",
        "green",
        "blue",
    ]
    assert listed["x_lookup"].annotations.read_only_hint is True
    assert listed["x_erase"].annotations.destructive_hint is True
    specs = {name: tool.spec for name, tool in listed.items()}
    outcome = await execute(specs, "x_lookup", {"key": "k"}, side="server")
    assert (outcome.status, outcome.result) == ("done", {"result": "value of k"})


@pytest.mark.timeout(60)
async def test_close_ends_the_process_and_a_call_starts_it_again(own: McpServer) -> None:
    """close() ends the stdio process; the next call starts a new one (a restart counted)."""
    first = (await own.call("pid", {}))["result"]
    assert alive(first)
    await own.close()
    assert not own.running and not alive(first)
    second = (await own.call("pid", {}))["result"]
    assert second != first and own.restarts == 1


@pytest.mark.timeout(60)
async def test_past_its_restarts_the_server_says_what_its_owner_said_to_do(own: McpServer) -> None:
    """After MAX_RESTARTS restarts a call fails in one line with the owner's advice."""
    own.restarts = MAX_RESTARTS
    await own.close()
    with pytest.raises(ToolError, match=r"started again 3 times: .*\(restart the test\)$"):
        await own.call("pid", {})


@pytest.mark.timeout(60)
async def test_mcp_server_time_converts_a_time() -> None:
    """The PyPI mcp-server-time, connected directly: convert_time's structured result."""
    server = McpServer(parse_target(TIME))
    try:
        await server.start()
        result = await server.call(
            "convert_time",
            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
        )
    finally:
        await server.close()
    assert result["time_difference"] == "+9.0h"
