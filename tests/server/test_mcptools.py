"""MCP servers' tools as the bridge's own server tools, against real MCP servers and real HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nbchat import ChatClient, ToolError
from nbchat.server import ChatServer
from nbchat.server.openai.bridge import OpenAIAgent
from tests.helpers import TIMEOUT, alive
from tests.openai_upstream import Reply, Upstream, text_chunks, tool_chunks

pytestmark = pytest.mark.loopback

TIME = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
OWN = [sys.executable, str(Path(__file__).parents[1] / "client" / "mcp_server.py")]
TOKYO = '{"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}'


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The scripted OpenAI-compatible server on a free loopback port."""
    async with Upstream() as server:
        yield server


@pytest.fixture
async def agent(upstream: Upstream) -> AsyncIterator[OpenAIAgent]:
    """A bridge to the scripted upstream, closed (its MCP servers ended) after the test."""
    bridge = OpenAIAgent(base_url=upstream.base_url, model="scripted")
    yield bridge
    await bridge.aclose()


@pytest.mark.timeout(60)
async def test_the_model_calls_an_mcp_tool_that_runs_on_the_server(
    upstream: Upstream, agent: OpenAIAgent
) -> None:
    """mcp-server-time's convert_time, asked for by the model, runs here; its result goes back."""
    offer = await agent.mcp(TIME)
    assert offer.line == "MCP: time: offering get_current_time, convert_time"
    upstream.script.append(Reply(tool_chunks(("call_t", "convert_time", TOKYO))))
    upstream.script.append(Reply(text_chunks("21:00 in Tokyo.")))
    async with ChatServer(agent) as server, ChatClient(url=server.url) as client:
        reply = await asyncio.wait_for(client.ask("noon UTC in Tokyo?"), TIMEOUT)
    (call,) = reply.tool_calls
    assert (call.status, call.runs_in) == ("done", None)
    assert call.result["target"]["datetime"].endswith("T21:00:00+09:00")
    first, second = upstream.completion_requests()
    offered = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert {"calculator", "get_current_time", "convert_time"} <= set(offered)
    assert "target_timezone" in offered["convert_time"]["parameters"]["properties"]
    tool_message = second["messages"][-1]
    assert json.loads(tool_message["content"])["time_difference"] == "+9.0h"


@pytest.mark.timeout(60)
async def test_an_mcp_tools_image_reaches_a_vision_model_as_an_image(upstream: Upstream) -> None:
    """A server-side MCP tool's PNG: the tool message describes it, and with vision the
    image follows as an image_url part; never base64 in the text."""
    bridge = OpenAIAgent(base_url=upstream.base_url, model="scripted", vision=True)
    try:
        await bridge.mcp(OWN)
        upstream.script.append(Reply(tool_chunks(("call_p", "picture", "{}"))))
        upstream.script.append(Reply(text_chunks("One pixel.")))
        async with ChatServer(bridge) as server, ChatClient(url=server.url) as client:
            reply = await asyncio.wait_for(client.ask("show me"), TIMEOUT)
    finally:
        await bridge.aclose()
    (call,) = reply.tool_calls
    assert call.status == "done" and "displayed: a PNG image, 1\u00d71" in call.result
    second = upstream.completion_requests()[1]
    tool_message, shown = second["messages"][-2:]
    assert tool_message["role"] == "tool" and "base64" not in tool_message["content"]
    assert shown["content"][1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")


@pytest.mark.timeout(60)
async def test_arguments_outside_the_schema_never_reach_the_mcp_server(
    upstream: Upstream, agent: OpenAIAgent
) -> None:
    """A required field missing is the model's error result, naming the field."""
    await agent.mcp(TIME)
    upstream.script.append(Reply(tool_chunks(("c", "convert_time", '{"time": "12:00"}'))))
    upstream.script.append(Reply(text_chunks("sorry")))
    async with ChatServer(agent) as server, ChatClient(url=server.url) as client:
        reply = await asyncio.wait_for(client.ask("convert"), TIMEOUT)
    (call,) = reply.tool_calls
    assert call.status == "error" and "source_timezone: required" in str(call.result)


@pytest.mark.timeout(60)
async def test_tools_that_may_change_things_are_withheld_unless_allowed(
    upstream: Upstream, agent: OpenAIAgent
) -> None:
    """erase (destructive) is not offered, and says so; allow_writes offers it and it runs."""
    offer = await agent.mcp(OWN)
    assert "erase" in offer.withheld and "erase" not in agent.tools and "lookup" in agent.tools
    assert "withholding erase" in offer.line and "--mcp-allow-writes" in offer.line
    upstream.script.append(Reply(tool_chunks(("c1", "erase", '{"path": "/tmp/x"}'))))
    upstream.script.append(Reply(text_chunks("no")))
    async with ChatServer(agent) as server, ChatClient(url=server.url) as client:
        refused = await asyncio.wait_for(client.ask("erase it"), TIMEOUT)
    assert refused.tool_calls[0].status == "error"
    assert "unknown server tool 'erase'" in str(refused.tool_calls[0].result)

    writer = OpenAIAgent(base_url=upstream.base_url, model="scripted", tools=())
    try:
        allowed = await writer.mcp(OWN, allow_writes=True)
        assert allowed.withheld == [] and "erase" in writer.tools
        upstream.script.append(Reply(tool_chunks(("c2", "erase", '{"path": "/tmp/y"}'))))
        upstream.script.append(Reply(text_chunks("done")))
        async with ChatServer(writer) as server, ChatClient(url=server.url) as client:
            erased = await asyncio.wait_for(client.ask("erase it"), TIMEOUT)
    finally:
        await writer.aclose()
    assert (erased.tool_calls[0].status, erased.tool_calls[0].result) == (
        "done",
        {"result": "erased /tmp/y"},
    )


@pytest.mark.timeout(60)
async def test_the_mcp_server_ends_with_the_bridge(upstream: Upstream) -> None:
    """aclose() (the server closing, nbchat serve ending) ends the stdio server's process."""
    bridge = OpenAIAgent(base_url=upstream.base_url, model="scripted")
    await bridge.mcp(OWN)
    pid = (await bridge.tools["pid"].function())["result"]
    assert alive(pid)
    await bridge.aclose()
    assert not alive(pid)


@pytest.mark.timeout(60)
async def test_a_clash_or_a_bad_command_is_refused_in_one_line_leaving_nothing(
    agent: OpenAIAgent,
) -> None:
    """The same tools twice clash, naming the tool; a missing command names itself."""
    await agent.mcp(TIME)
    before = dict(agent.tools)
    with pytest.raises(ToolError, match=r"'get_current_time' \(MCP: time\) clashes"):
        await agent.mcp(TIME)
    with pytest.raises(ToolError) as missing:
        await agent.mcp("no-such-mcp-command --flag")
    assert "no-such-mcp-command" in str(missing.value) and "\n" not in str(missing.value)
    assert agent.tools == before and len(agent._mcp.offers) == 1
    names = {spec.name for spec in (await agent.mcp(TIME, prefix="utc_")).specs.values()}
    assert names == {"utc_get_current_time", "utc_convert_time"}


@pytest.mark.timeout(60)
async def test_a_changed_tool_list_is_offered_anew(agent: OpenAIAgent) -> None:
    """notifications/tools/list_changed: the server's new tool joins the offered ones."""
    await agent.mcp(OWN)
    changed = asyncio.Event()
    offer_anew = agent._mcp._on_change
    agent._mcp._on_change = lambda: (offer_anew(), changed.set())  # type: ignore[assignment]
    await agent.tools["grow"].function()
    await asyncio.wait_for(changed.wait(), TIMEOUT)
    assert "extra" in agent.tools
    assert any(t["function"]["name"] == "extra" for t in agent._openai_tools)
