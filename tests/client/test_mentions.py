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
    assert content[0]["text"].startswith("Context: the notebook variable df\ndf: pandas.DataFrame")
    assert "city" in content[0]["text"] and "<" not in content[0]["text"]
    assert "credential" in content[1]["text"] and content[2]["text"] == text
    assert KEY not in json.dumps(request)
    sent = [json.loads(line) for line in record.read_text().splitlines()[1:]]
    (message,) = [line["data"] for line in sent if line["dir"] == "out"]
    assert [item["mention"] for item in message["context"]] == ["df", "OPENAI_API_KEY"]
    assert KEY not in record.read_text()


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
    assert any("did not announce context" in r.getMessage() for r in caplog.records)
