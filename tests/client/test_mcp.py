"""MCP servers as client tools, against real servers: the repository's own and mcp-server-time."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nbchat import ChatClient, ConfigError, ToolCall, ToolError
from nbchat.server import DemoServer
from nbchat.tools import execute
from tests.helpers import FAST, TIMEOUT, alive

pytestmark = pytest.mark.loopback

SERVER = [sys.executable, str(Path(__file__).with_name("mcp_server.py"))]
TIME = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]


@pytest.fixture
async def client(demo: DemoServer) -> AsyncIterator[ChatClient]:
    """A client of the demo server, disconnected (and its MCP servers ended) after the test."""
    chat = ChatClient(url=demo.url, **FAST)
    yield chat
    await chat.disconnect()


async def _call(chat: ChatClient, name: str, arguments: dict[str, object]) -> object:
    specs = {tool: chat.tools[tool].spec for tool in chat.tools}
    return await execute(specs, name, arguments)


@pytest.mark.timeout(60)
async def test_mcp_adds_the_servers_tools_with_their_schemas_and_approval(
    client: ChatClient,
) -> None:
    """Tools keep the server's JSON Schema; only read-only, non-destructive ones go unasked."""
    names = await client.mcp(SERVER)
    assert {"lookup", "erase", "paint", "place"} <= set(names)
    tools = client.tools
    assert tools["paint"].parameters["properties"]["color"]["enum"] == ["red", "green", "blue"]
    assert "$defs" in tools["place"].parameters
    assert (tools["lookup"].confirm, tools["erase"].confirm) == (False, True)
    assert tools["lookup"].where == "MCP: mcp_server"


@pytest.mark.timeout(60)
async def test_confirm_forces_or_waives_approval_for_every_tool(client: ChatClient) -> None:
    """confirm=True asks for every tool, confirm=False for none, whatever the annotations."""
    await client.mcp(SERVER, confirm=True)
    assert all(tool.confirm for tool in client.tools.values())
    await client.mcp(SERVER, confirm=False)
    assert not any(tool.confirm for tool in client.tools.values())


@pytest.mark.timeout(60)
async def test_arguments_outside_the_schema_never_reach_the_server(client: ChatClient) -> None:
    """An enum value not listed and a missing nested field are error results naming the field."""
    await client.mcp(SERVER)
    paint = await _call(client, "paint", {"color": "purple"})
    assert paint.status == "error" and "color" in paint.result and "purple" in paint.result
    place = await _call(client, "place", {"placement": {"label": "a", "at": {"x": 1}}})
    assert (place.status, place.result) == (
        "error",
        "bad arguments for place: placement.at.y: required",
    )
    good = await _call(client, "place", {"placement": {"label": "a", "at": {"x": 1, "y": 2}}})
    assert (good.status, good.result) == ("done", {"label": "a", "x": 1, "y": 2})


@pytest.mark.timeout(60)
async def test_server_errors_and_images_come_back_as_results(client: ChatClient) -> None:
    """An MCP error result carries the server's message; an image is shown in the card and
    goes with the result for a model that reads images, its text a description, no base64."""
    await client.mcp(SERVER)
    failed = await _call(client, "fail", {})
    assert failed.status == "error" and "Error executing tool fail" in failed.result
    specs = {tool: client.tools[tool].spec for tool in client.tools}
    picture = await execute(specs, "picture", {}, rich=True)
    assert picture.status == "done" and "displayed: a PNG image, 1\u00d71" in picture.result
    assert picture.html is not None and '<img src="data:image/png;base64,' in picture.html
    (image,) = picture.images
    assert image.mime == "image/png" and image.data is not None
    assert image.data not in picture.text  # the model reads the description, not the bytes


@pytest.mark.timeout(60)
async def test_the_demo_agent_calls_an_mcp_tool_through_the_client(client: ChatClient) -> None:
    """call lookup {...}: the model's call runs on the MCP server and the reply has its result."""
    await client.mcp(SERVER)
    reply = await client.ask('call lookup {"key": "k"}', timeout=TIMEOUT)
    (call,) = reply.tool_calls
    assert (call.status, call.runs_in, call.result) == ("done", "client", {"result": "value of k"})


@pytest.mark.timeout(60)
async def test_a_destructive_tool_waits_for_the_approver(client: ChatClient) -> None:
    """erase runs only after the approver says yes, which sees the exact arguments."""
    await client.mcp(SERVER)
    asked: list[ToolCall] = []

    async def approver(call: ToolCall) -> bool:
        asked.append(call)
        return len(asked) > 1

    client.approver = approver
    denied = await client.ask('call erase {"path": "/tmp/x"}', timeout=TIMEOUT)
    assert denied.tool_calls[0].status == "error" and "denied" in str(denied.tool_calls[0].result)
    allowed = await client.ask('call erase {"path": "/tmp/y"}', timeout=TIMEOUT)
    assert allowed.tool_calls[0].status == "done"
    assert [call.arguments for call in asked] == [{"path": "/tmp/x"}, {"path": "/tmp/y"}]


@pytest.mark.timeout(60)
async def test_mcp_server_time_gives_its_tools(client: ChatClient) -> None:
    """The PyPI mcp-server-time: its tools are added and get_current_time answers."""
    names = await client.mcp(TIME)
    assert "get_current_time" in names and client.tools["get_current_time"].where == "MCP: time"
    outcome = await _call(client, "get_current_time", {"timezone": "UTC"})
    assert outcome.status == "done" and "UTC" in str(outcome.result)


@pytest.mark.timeout(60)
async def test_the_server_process_ends_with_the_client() -> None:
    """disconnect() ends the stdio server: its process is gone."""
    chat = ChatClient(url="ws://127.0.0.1:1/ws", **FAST)
    await chat.mcp(SERVER)
    pid = (await _call(chat, "pid", {})).result["result"]
    assert alive(pid)
    await chat.disconnect()
    assert not alive(pid)


@pytest.mark.timeout(60)
async def test_a_crashed_server_fails_in_one_line_and_restarts_on_the_next_call(
    client: ChatClient,
) -> None:
    """crash: that call fails in one line; the next call starts the server again."""
    await client.mcp(SERVER)
    first = (await _call(client, "pid", {})).result["result"]
    crashed = await _call(client, "crash", {})
    assert crashed.status == "error" and "ended during the call" in crashed.result
    assert "\n" not in crashed.result
    again = await _call(client, "pid", {})
    assert again.status == "done" and again.result["result"] != first
    assert client.mcp_servers[" ".join(SERVER)].restarts == 1  # type: ignore[union-attr]


@pytest.mark.timeout(60)
async def test_a_call_past_its_time_limit_or_stopped_ends(client: ChatClient) -> None:
    """A call has a time limit; cancelling the call's task (Stop) cancels the MCP request."""
    await client.mcp(SERVER)
    server = client.mcp_servers[" ".join(SERVER)]
    assert server is not None
    server._call_timeout = 0.5
    late = await _call(client, "slow", {"seconds": 30})
    assert late.status == "error" and "did not finish within 0.5s" in late.result
    server._call_timeout = 60
    task = asyncio.ensure_future(_call(client, "slow", {"seconds": 30}))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await _call(client, "lookup", {"key": "a"})).status == "done"


@pytest.mark.timeout(60)
async def test_a_changed_tool_list_is_listed_again(client: ChatClient) -> None:
    """notifications/tools/list_changed: the new tool is offered."""
    await client.mcp(SERVER)
    assert "extra" not in client.tools
    await _call(client, "grow", {})
    for _ in range(100):
        if "extra" in client.tools:
            break
        await asyncio.sleep(0.05)
    assert client.tools["extra"].where == "MCP: mcp_server"


@pytest.mark.timeout(60)
async def test_a_name_clash_is_refused_naming_both_or_prefixed(client: ChatClient) -> None:
    """A kernel function named like an MCP tool: refused naming both; prefix= avoids it."""

    @client.tool
    def lookup(key: str) -> str:
        return key

    with pytest.raises(ToolError, match=r"'lookup' \(MCP: mcp_server\) clashes .*in this kernel"):
        await client.mcp(SERVER)
    assert client.tools["lookup"].where == "in this kernel"
    names = await client.mcp(SERVER, prefix="srv_")
    assert "srv_lookup" in names and client.tools["lookup"].where == "in this kernel"
    with pytest.raises(ConfigError, match="clashes"):
        client.tool(lambda key: key, name="srv_lookup", schema={"type": "object"})


@pytest.mark.timeout(60)
async def test_bad_commands_fail_in_one_line(client: ChatClient) -> None:
    """Missing, exiting at once, or hanging: one line naming the command (and its stderr)."""
    with pytest.raises(ToolError) as missing:
        await client.mcp("no-such-mcp-command --flag")
    assert "no-such-mcp-command" in str(missing.value)
    with pytest.raises(ToolError) as dying:
        await client.mcp([*SERVER, "--die"])
    assert "refusing to start (--die)" in str(dying.value)
    with pytest.raises(ToolError) as hanging:
        await client.mcp([*SERVER, "--hang"], timeout=1)
    assert "did not start within 1s" in str(hanging.value)
    for error in (missing, dying, hanging):
        assert "\n" not in str(error.value) and error.value.__cause__ is None
    assert not client.tools


def test_mcp_works_from_synchronous_code() -> None:
    """mcp_sync starts the server from plain code; close_sync ends it."""
    chat = ChatClient(url="ws://127.0.0.1:1/ws", **FAST)
    try:
        assert "lookup" in chat.mcp_sync(SERVER)
    finally:
        chat.close_sync()
    assert os.environ.get("NBCHAT_REPLAY") is None
