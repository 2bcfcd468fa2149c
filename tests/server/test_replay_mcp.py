"""Replaying MCP tools: served from the recording, the server not started; live=True starts it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from nbchat import ChatClient, ToolError
from nbchat.server import ReplayServer, serve_demo
from nbchat.testing.replay import replaying
from tests.helpers import TIMEOUT

pytestmark = pytest.mark.loopback

SERVER = Path(__file__).parents[1] / "client" / "mcp_server.py"


async def _record(tmp_path: Path) -> tuple[Path, list[str], Path]:
    """Record a call of an MCP tool of a server copied to tmp_path; the transcript, names, copy."""
    copy = tmp_path / "vanishing_mcp.py"
    shutil.copy(SERVER, copy)
    path = tmp_path / "mcp.jsonl"
    async with serve_demo(port=0) as server, ChatClient(url=server.url, record=path) as chat:
        names = await chat.mcp([sys.executable, str(copy)])
        reply = await chat.ask('call paint {"color": "red"}', timeout=TIMEOUT)
    assert reply.tool_calls[0].result == {"result": "painted red"}
    return path, names, copy


@pytest.mark.timeout(60)
async def test_an_mcp_tool_replays_from_the_recording_where_its_server_is_absent(
    tmp_path: Path,
) -> None:
    """Under a replay, mcp() registers the recorded tools without starting the absent server."""
    path, names, copy = await _record(tmp_path)
    copy.unlink()  # the server's command no longer exists
    async with ReplayServer(path) as server:
        undo = replaying(server.url, first=True)
        try:
            async with ChatClient(url="ws://127.0.0.1:1/ws") as chat:
                assert await chat.mcp([sys.executable, str(copy)]) == names
                assert chat.tools["paint"].where == "MCP: vanishing"
                assert chat.mcp_servers[f"{sys.executable} {copy}"] is None
                reply = await chat.ask('call paint {"color": "red"}', timeout=TIMEOUT)
        finally:
            undo()
    assert reply.error is None
    assert (reply.tool_calls[0].status, reply.tool_calls[0].result) == (
        "done",
        {"result": "painted red"},
    )


@pytest.mark.timeout(60)
async def test_live_true_runs_the_server_and_compares_its_result(tmp_path: Path) -> None:
    """live=True starts the server under a replay; its calls run and are compared."""
    path, names, copy = await _record(tmp_path)
    async with ReplayServer(path) as server:
        undo = replaying(server.url, first=True)
        try:
            async with ChatClient(url="ws://127.0.0.1:1/ws") as chat:
                assert await chat.mcp([sys.executable, str(copy)], live=True) == names
                assert chat.mcp_servers[f"{sys.executable} {copy}"] is not None
                reply = await chat.ask('call paint {"color": "red"}', timeout=TIMEOUT)
        finally:
            undo()
    assert reply.error is None and reply.tool_calls[0].result == {"result": "painted red"}


@pytest.mark.timeout(60)
async def test_a_server_the_recording_never_listed_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """Under a replay, mcp() of a server the recording does not hold says what to do."""
    path, _, _ = await _record(tmp_path)
    async with ReplayServer(path) as server:
        undo = replaying(server.url, first=True)
        try:
            chat = ChatClient(url="ws://127.0.0.1:1/ws")
            with pytest.raises(ToolError, match=r"holds no tool list .* live=True"):
                await chat.mcp("some-other-mcp-server")
        finally:
            undo()
