"""The server's half of client tools, driven by a raw WebSocket client: the frames on the wire."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from nbchat.protocol import (
    CLIENT_ID_HEADER,
    CLIENT_TOOLS_FEATURE,
    FEATURES_HEADER,
    REASONING_FEATURE,
)
from nbchat.server import DemoAgent, DemoServer, serve_demo
from nbchat.server.app import ChatServer
from tests.helpers import TIMEOUT
from tests.server.helpers import recv, reply, send

pytestmark = pytest.mark.loopback

TOOL = {"name": "slow", "description": "", "parameters": {"type": "object", "properties": {}}}
BOB = {CLIENT_ID_HEADER: "bob-" + "b" * 28}


async def test_the_handshake_announces_client_tools(demo: DemoServer) -> None:
    """The opening handshake's response names the client-tools and reasoning features."""
    async with connect(demo.url) as ws:
        assert ws.response is not None
        features = [f.strip() for f in ws.response.headers[FEATURES_HEADER].split(",")]
        assert CLIENT_TOOLS_FEATURE in features and REASONING_FEATURE in features


async def test_a_request_travels_in_the_reply_and_a_response_is_acked(demo: DemoServer) -> None:
    """tools, then a message: tool_call card, tool_request, response -> tool_ack, result card."""
    async with connect(demo.url) as ws:
        await send(ws, type="tools", tools=[TOOL])
        await send(ws, type="message", id="m1", conversation_id="c", message="call slow")
        assert (await recv(ws))["type"] == "ack"
        card = await recv(ws)
        request = await recv(ws)
        assert card["type"] == "tool_call" and card["tool_calls"][0]["runs_in"] == "client"
        assert request["type"] == "tool_request" and request["reply_to"] == "m1"
        assert request["id"] == card["tool_calls"][0]["id"] and request["name"] == "slow"
        await send(ws, type="tool_response", id=request["id"], status="done", result=7)
        ack = await recv(ws)
        assert ack == {"type": "tool_ack", "id": request["id"]}
        frames = await reply(ws, "m1")
        result = next(f for f in frames if f["type"] == "tool_result")
        assert result["tool_calls"][0]["result"] == 7 and frames[-1]["type"] == "done"
        await send(ws, type="tool_response", id=request["id"], status="done", result=8)
        assert (await recv(ws)) == {"type": "tool_ack", "id": request["id"]}  # acked again


async def test_calls_beyond_the_bound_are_error_results() -> None:
    """With max_tool_calls=1, a second call while one runs is an error outcome, not a wait."""
    async with ChatServer(DemoAgent(), max_tool_calls=1) as server, connect(server.url) as ws:
        await send(ws, type="tools", tools=[TOOL])
        await send(ws, type="message", id="m1", conversation_id="a", message="call slow")
        await send(ws, type="message", id="m2", conversation_id="b", message="call slow")
        seen: dict[str, list[dict[str, object]]] = {"m1": [], "m2": []}
        while not any(f["type"] == "done" for f in seen["m2"]):
            frame = await recv(ws)
            seen[str(frame.get("reply_to"))].append(frame)
        (refused,) = [f for f in seen["m2"] if f["type"] == "tool_result"]
        assert "already runs 1 tool calls" in refused["tool_calls"][0]["result"]  # type: ignore[index]
        assert [f["type"] for f in seen["m1"]] == ["ack", "tool_call", "tool_request"]


async def test_a_request_is_sent_again_when_a_client_resumes_the_reply() -> None:
    """A reconnecting client that resends its message gets the tool_request again, same id."""
    async with serve_demo(port=0) as server:
        async with connect(server.url, additional_headers=BOB) as ws:
            await send(ws, type="tools", tools=[TOOL])
            await send(ws, type="message", id="m1", conversation_id="c", message="call slow")
            frames = [await recv(ws) for _ in range(3)]
            first = frames[-1]
            assert first["type"] == "tool_request"
        async with connect(server.url, additional_headers=BOB) as ws:
            await send(ws, type="tools", tools=[TOOL])
            await send(ws, type="message", id="m1", conversation_id="c", message="call slow")
            frames = [await recv(ws) for _ in range(3)]
            assert frames[0]["duplicate"] is True and frames[-1] == first
            await send(ws, type="tool_response", id=first["id"], status="error", result="no")
            done = await asyncio.wait_for(reply(ws, "m1"), TIMEOUT)
            assert done[-1]["type"] == "done"


async def test_a_tool_frame_with_a_lone_surrogate_is_a_bad_request(demo: DemoServer) -> None:
    """A tool_response that cannot be UTF-8 is answered bad_request; the connection stays open."""
    async with connect(demo.url) as ws:
        await ws.send('{"type":"tool_response","id":"\\ud800","result":1}')
        error = await recv(ws)
        assert error["type"] == "error" and error["error"]["code"] == "bad_request"
        await send(ws, type="message", id="m1", conversation_id="c", message="echo ok")
        assert [f["type"] for f in await reply(ws, "m1")][-1] == "done"
