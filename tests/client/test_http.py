"""protocol="ag-ui" and "ai-sdk" against pydantic-ai's real adapters under uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nbchat import ChatClient
from nbchat.exceptions import ConnectionFailed, ServerError
from nbchat.protocol import ToolCall
from tests.client.agents import Agents, serving
from tests.helpers import TIMEOUT, png
from tests.openai_upstream import Reply, Status, text_chunks, tool_chunks

pytestmark = pytest.mark.loopback


@pytest.fixture
async def agents() -> AsyncIterator[Agents]:
    async with serving() as served:
        yield served


async def test_ag_ui_streams_text_and_keeps_the_history(agents: Agents) -> None:
    """Tokens arrive as tokens; the second message's run carries the first exchange."""
    agents.upstream.script.append(Reply(text_chunks("Hello", " there")))
    async with ChatClient(url=agents.agui, protocol="ag-ui") as client:
        tokens: list[str] = []
        async for item in client.stream("hi"):
            if getattr(item, "type", None) == "token":
                tokens.append(item.response)  # type: ignore[union-attr]
        assert tokens == ["Hello", " there"]
        reply = await client.ask("and again", timeout=TIMEOUT)
    assert reply.text.startswith("You said:")
    sent = agents.upstream.completion_requests()[-1]["messages"]
    assert [m["role"] for m in sent if m["role"] != "system"] == ["user", "assistant", "user"]


async def test_ag_ui_a_server_tool_is_a_card_with_its_result(agents: Agents) -> None:
    """The agent's own tool call shows as a card, done with the agent's result."""
    agents.upstream.script.append(Reply(tool_chunks(("c1", "add", '{"a": 2, "b": 3}'))))
    agents.upstream.script.append(Reply(text_chunks("It is 5.")))
    async with ChatClient(url=agents.agui, protocol="ag-ui") as client:
        reply = await client.ask("add 2 and 3", timeout=TIMEOUT)
        follow = await client.ask("thanks", timeout=TIMEOUT)
    assert reply.text == "It is 5."
    (call,) = reply.tool_calls
    assert (call.name, call.arguments, call.status, call.result) == (
        "add",
        {"a": 2, "b": 3},
        "done",
        5,
    )
    assert follow.text.strip() == "You said: thanks"


async def test_ag_ui_runs_the_notebook_tool_and_the_follow_up_run(agents: Agents) -> None:
    """A frontend tool runs in-process (approved); the follow-up run continues the same reply."""
    ran: list[str] = []

    def shout(text: str) -> str:
        """Shout the text."""
        ran.append(text)
        return text.upper()

    agents.upstream.script.append(Reply(tool_chunks(("k1", "shout", '{"text": "hey"}'))))
    agents.upstream.script.append(Reply(text_chunks("Shouted.")))
    async with ChatClient(url=agents.agui, protocol="ag-ui") as client:
        client.tool(shout, confirm=True)
        asked: list[ToolCall] = []

        async def approve(call: ToolCall) -> bool:
            asked.append(call)
            return True

        client.approver = approve
        reply = await client.ask("shout hey", timeout=TIMEOUT)
    assert ran == ["hey"] and [call.name for call in asked] == ["shout"]
    assert reply.text == "Shouted."
    (call,) = reply.tool_calls
    assert (call.status, call.result, call.runs_in) == ("done", "HEY", "client")
    second = agents.upstream.completion_requests()[-1]["messages"]
    assert second[-1]["role"] == "tool" and "HEY" in second[-1]["content"]
    offered = agents.upstream.completion_requests()[0]["tools"]
    assert any(tool["function"]["name"] == "shout" for tool in offered)


async def test_ag_ui_run_error_is_one_line(agents: Agents) -> None:
    """A model failing inside the agent ends the reply with RUN_ERROR's one line."""
    agents.upstream.script.append(Status(400, "the model\nfell over"))
    async with ChatClient(url=agents.agui, protocol="ag-ui") as client:
        with pytest.raises(ServerError) as caught:
            await client.ask("hi", timeout=TIMEOUT)
    assert "\n" not in str(caught.value) and str(caught.value)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/nothing", "HTTP 404"), ("/page", "text/html"), ("/get-only", "HTTP 405")],
)
async def test_ag_ui_a_url_that_is_no_agent_is_one_line_and_no_retry(
    agents: Agents, path: str, status: str
) -> None:
    """404, an HTML page, 405: the reply fails with one line naming the URL and the status."""
    url = agents.base + path
    async with ChatClient(url=url, protocol="ag-ui", reconnect_interval=0.01) as client:
        with pytest.raises(ConnectionFailed) as caught:
            await client.ask("hi", timeout=TIMEOUT)
    line = str(caught.value)
    assert "\n" not in line and url in line and status in line
    assert client.attempt == 0  # never retried


async def test_ag_ui_a_run_that_never_finishes_is_bounded(agents: Agents) -> None:
    """A stream that goes silent ends its reply in one line after ping_interval + ping_timeout."""
    url = agents.base + "/hang"
    async with ChatClient(url=url, protocol="ag-ui", ping_interval=0.1, ping_timeout=0.1) as client:
        with pytest.raises(ServerError) as caught:
            await client.ask("hi", timeout=TIMEOUT)
    assert "sent nothing for 0.2 s" in str(caught.value)


async def test_ag_ui_stop_closes_the_stream(agents: Agents) -> None:
    """Stop ends the reply cancelled and the agent's request is closed."""
    agents.upstream.script.append(Reply(endless=True, delay=0.01))
    async with ChatClient(url=agents.agui, protocol="ag-ui") as client:
        first = asyncio.Event()
        client.on("message", lambda m: first.set() if m.type == "token" else None)
        future = asyncio.ensure_future(client.ask("go on", timeout=TIMEOUT))
        await asyncio.wait_for(first.wait(), TIMEOUT)
        assert client.cancel()
        reply = await future
        await asyncio.wait_for(agents.upstream.disconnected.wait(), TIMEOUT)
    assert reply.cancelled


async def test_ai_sdk_streams_text_and_a_tool_card(agents: Agents) -> None:
    """The AI SDK stream: a server tool's card with its result, then the text."""
    agents.upstream.script.append(Reply(tool_chunks(("c1", "add", '{"a": 1, "b": 1}'))))
    agents.upstream.script.append(Reply(text_chunks("Two", ".")))
    async with ChatClient(url=agents.aisdk, protocol="ai-sdk") as client:
        reply = await client.ask("add", timeout=TIMEOUT)
        again = await client.ask("more", timeout=TIMEOUT)
    assert reply.text == "Two."
    assert [(c.name, c.result) for c in reply.tool_calls] == [("add", 2)]
    assert again.text.strip() == "You said: more"


@pytest.mark.parametrize("protocol", ["ag-ui", "ai-sdk"])
async def test_attachments_reach_the_agents_model_as_an_image_and_a_text(
    agents: Agents, protocol: str
) -> None:
    """pydantic-ai's adapters hand an attached image and text to the model as their parts."""
    agents.upstream.script.append(Reply(text_chunks("Seen.")))
    url = agents.agui if protocol == "ag-ui" else agents.aisdk
    async with ChatClient(url=url, protocol=protocol) as client:
        reply = await client.ask("what is this?", attach=[png(), "a note"], timeout=TIMEOUT)
    assert reply.text == "Seen."
    user = agents.upstream.completion_requests()[-1]["messages"][-1]
    assert user["role"] == "user"
    parts = user["content"]
    kinds = [part["type"] for part in parts]
    assert kinds.count("image_url") == 1, parts
    image = next(part for part in parts if part["type"] == "image_url")
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    texts = [part["text"] for part in parts if part["type"] == "text"]
    assert "what is this?" in texts
    assert "Attached note.txt (text/plain, 6 B):\na note" in texts
