"""``@df`` from code: its description reaches the model behind the bridge as context, is recorded
redacted, and is never written to a server that did not announce ``context``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from websockets.asyncio.server import ServerConnection, serve

from nbchat import ChatClient
from nbchat.client.kernel import Kernel
from nbchat.server import ChatServer
from nbchat.server.openai.bridge import OpenAIAgent
from nbchat.transcript import Transcript
from tests.helpers import FAST, TIMEOUT
from tests.openai_upstream import Upstream

pytestmark = pytest.mark.loopback

KEY = "sk-" + "Zq9x" * 10


def notebook() -> Kernel:
    """A notebook's state: a DataFrame, and a key in a variable."""
    namespace: dict[str, Any] = {
        "df": pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]}),
        "OPENAI_API_KEY": KEY,
    }
    return Kernel(namespace=lambda: namespace)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The scripted OpenAI-compatible server on a free loopback port."""
    async with Upstream() as server:
        yield server


async def test_a_mention_reaches_the_model_as_a_context_part(
    upstream: Upstream, tmp_path: Path
) -> None:
    """``@df`` adds df's description as a text part before the user's words; the key never goes."""
    agent = OpenAIAgent(base_url=upstream.base_url, model="scripted", api_key="sk-test-1")
    record = tmp_path / "chat.jsonl"
    async with ChatServer(agent) as server:
        client = ChatClient(url=server.url, kernel_tools=notebook(), record=record)
        async with client:
            text = "what columns does @df have? is @OPENAI_API_KEY set? mail ada@df.org"
            reply = await client.ask(text, timeout=TIMEOUT)
    await agent.aclose()
    assert reply.text.startswith("You said: what columns")
    (request,) = upstream.completion_requests()
    content = request["messages"][-1]["content"]
    assert [part["type"] for part in content] == ["text", "text", "text"]
    assert content[0]["text"].startswith("Context: the notebook variable df\ndf (")
    assert "is a pandas DataFrame: 2 rows \u00d7 2 columns" in content[0]["text"]
    assert "city" in content[0]["text"] and "<" not in content[0]["text"]
    assert "credential" in content[1]["text"] and content[2]["text"] == text
    assert KEY not in json.dumps(request)
    sent = [json.loads(line) for line in record.read_text().splitlines()[1:]]
    (message,) = [line["data"] for line in sent if line["dir"] == "out"]
    assert [item["mention"] for item in message["context"]] == ["df", "OPENAI_API_KEY"]
    assert KEY not in record.read_text()
    (turn,) = Transcript.load(record).turns
    assert turn.mentions == ("df", "OPENAI_API_KEY")  # chips in its bubble, wherever shown
    assert '<span class="nbchat-mention">@df</span>' in Transcript.load(record).to_html()


async def test_without_kernel_tools_a_mention_is_plain_text(upstream: Upstream) -> None:
    """A client that shares no namespace sends ``@df`` as the words it is, nothing more."""
    agent = OpenAIAgent(base_url=upstream.base_url, model="scripted", api_key="sk-test-1")
    async with ChatServer(agent) as server, ChatClient(url=server.url) as client:
        await client.ask("what columns does @df have?", timeout=TIMEOUT)
    await agent.aclose()
    (request,) = upstream.completion_requests()
    assert request["messages"][-1]["content"] == "what columns does @df have?"


async def test_a_server_that_did_not_announce_context_is_sent_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A v1 server announcing nothing gets the message's text alone, and a warning says so."""
    frames: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            frames.append(frame)
            ids = {"reply_to": frame["id"], "conversation_id": frame["conversation_id"]}
            await ws.send(json.dumps({"type": "ack", "id": frame["id"], **ids}))
            await ws.send(json.dumps({"type": "token", "response": "ok", **ids}))
            await ws.send(json.dumps({"type": "done", **ids}))

    caplog.set_level(logging.WARNING, "nbchat.client")
    async with serve(handler, "127.0.0.1", 0) as plain:
        url = f"ws://127.0.0.1:{plain.sockets[0].getsockname()[1]}/ws"
        async with ChatClient(url=url, kernel_tools=notebook(), **FAST) as client:
            reply = await asyncio.wait_for(client.ask("columns of @df?"), TIMEOUT)
    assert reply.text == "ok"
    (frame,) = frames
    assert "context" not in frame and frame["message"] == "columns of @df?"
    told = [r for r in caplog.records if "did not announce context" in r.getMessage()]
    assert len(told) == 1 and "@df" in told[0].getMessage()


async def test_over_ag_ui_a_mention_is_the_runs_context_entry() -> None:
    """AG-UI: df's description is the run's ``context`` entry (description, value), as the spec
    has it; the user's message stays the words typed (pydantic-ai's adapter reads no context)."""
    from tests.client.test_agui_runs import serving

    async with serving() as served:
        async with ChatClient(
            url=served.url("/agent"), protocol="ag-ui", kernel_tools=notebook()
        ) as client:
            await client.ask("what columns does @df have?", timeout=TIMEOUT)
        ((_, body),) = served.seen
    (entry,) = body["context"]
    assert entry["description"] == "the notebook variable df" and "city" in entry["value"]
    assert set(entry) == {"description", "value"}
    assert body["messages"][-1]["content"] == "what columns does @df have?"


async def test_over_the_ai_sdk_a_mention_reaches_the_model_as_a_text_part() -> None:
    """The AI SDK stream has no context field: the description is a labelled text part before
    the user's, which pydantic-ai's adapter hands its model."""
    from tests.client.agents import serving

    async with serving() as agents:
        async with ChatClient(
            url=agents.aisdk, protocol="ai-sdk", kernel_tools=notebook()
        ) as client:
            await client.ask("what columns does @df have?", timeout=TIMEOUT)
        request = json.dumps(agents.upstream.completion_requests()[-1]["messages"])
    assert "Context: the notebook variable df" in request and "city" in request
    assert KEY not in request


async def test_a_replay_matches_a_mentioning_message_on_its_text(tmp_path: Path) -> None:
    """Recorded with its context, a message replays by its text alone, even if df changed since."""
    from nbchat.server import DemoServer, ReplayServer

    record = tmp_path / "chat.jsonl"
    async with (
        DemoServer(port=0) as demo,
        ChatClient(url=demo.url, kernel_tools=notebook(), record=record) as client,
    ):
        recorded = await client.ask("what columns does @df have?", timeout=TIMEOUT)
    assert "B) is a pandas DataFrame: 2 rows \u00d7 2 columns" in recorded.text
    changed = Kernel(namespace=lambda: {"df": pd.DataFrame({"other": range(5)})})
    async with (
        ReplayServer(record) as replay,
        ChatClient(url=replay.url, kernel_tools=changed) as c,
    ):
        again = await c.ask("what columns does @df have?", timeout=TIMEOUT)
    assert again.error is None and again.text == recorded.text
