"""protocol="ag-ui" as agents run: usage, context and headers, shared state, a dropped run."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import uvicorn
from ag_ui.core import (
    RunFinishedEvent,
    RunStartedEvent,
    StateDeltaEvent,
    StateSnapshotEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
)
from ag_ui.encoder import EventEncoder
from pydantic_ai.ui.ag_ui import AGUIAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from nbchat import ChatClient, ChatWidget
from nbchat.protocol import Usage
from tests.client.agents import make_agent
from tests.helpers import TIMEOUT
from tests.notebook.widget_comm import recording_comms
from tests.openai_upstream import Reply as Script
from tests.openai_upstream import Upstream, text_chunks

pytestmark = pytest.mark.loopback


@dataclass
class Served:
    """The endpoints, and what each request brought: its headers and its JSON body."""

    base: str
    upstream: Upstream
    seen: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    breaks: int = 1
    """Runs of ``/flaky`` still to break off mid-stream."""

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def _stream(events: list[Any], *, then_break: bool = False) -> StreamingResponse:
    encoder = EventEncoder()

    async def body() -> AsyncIterator[str]:
        for event in events:
            yield encoder.encode(event)
        if then_break:  # the agent went away: the server cuts the chunked body short
            raise ConnectionResetError("the agent went away")

    return StreamingResponse(body(), media_type=encoder.get_content_type())


def _text(run: dict[str, Any], text: str) -> list[Any]:
    ids = {"thread_id": run["threadId"], "run_id": run["runId"]}
    return [
        RunStartedEvent(**ids),
        TextMessageStartEvent(message_id="a", role="assistant"),
        TextMessageContentEvent(message_id="a", delta=text),
        TextMessageEndEvent(message_id="a"),
    ]


def _app(served: Served, http: httpx2.AsyncClient) -> Starlette:
    agent = make_agent(served.upstream, http)

    async def seen(request: Request) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(await request.body())  # cached: read again below
        served.seen.append((dict(request.headers), body))
        return body

    async def real(request: Request) -> Response:
        await seen(request)
        return await AGUIAdapter.dispatch_request(request, agent=agent, include_usage=True)

    async def state(request: Request) -> Response:
        run = await seen(request)
        count = (run.get("state") or {}).get("count", 0) + 1
        ids = {"thread_id": run["threadId"], "run_id": run["runId"]}
        return _stream(
            [
                *_text(run, f"counted {count}"),
                StateSnapshotEvent(snapshot={"count": count, "seen": [count]}),
                StateDeltaEvent(delta=[{"op": "replace", "path": "/count", "value": count + 1}]),
                RunFinishedEvent(**ids),
            ]
        )

    async def flaky(request: Request) -> Response:
        run = await seen(request)
        if served.breaks > 0:
            served.breaks -= 1
            return _stream(_text(run, "half a rep"), then_break=True)
        ids = {"thread_id": run["threadId"], "run_id": run["runId"]}
        return _stream([*_text(run, "the whole reply"), RunFinishedEvent(**ids)])

    return Starlette(
        routes=[
            Route("/agent", real, methods=["POST"]),
            Route("/state", state, methods=["POST"]),
            Route("/flaky", flaky, methods=["POST"]),
        ]
    )


@asynccontextmanager
async def serving() -> AsyncIterator[Served]:
    """The endpoints under uvicorn on a loopback port (port 0), bound before it starts."""
    async with Upstream() as upstream, httpx2.AsyncClient() as http:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        served = Served(f"http://127.0.0.1:{sock.getsockname()[1]}", upstream)
        config = uvicorn.Config(_app(served, http), log_level="critical")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield served
        finally:
            server.should_exit = True
            await task


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with serving() as endpoints:
        yield endpoints


async def test_run_finished_usage_is_the_replys(served: Served) -> None:
    """pydantic-ai's RUN_FINISHED usage (include_usage) is Reply.usage, as the model counted."""
    counts = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    served.upstream.script.append(Script(text_chunks("Hi", " there"), usage=counts))
    async with ChatClient(url=served.url("/agent"), protocol="ag-ui") as client:
        reply = await client.ask("hello", timeout=TIMEOUT)
    assert reply.text == "Hi there"
    assert reply.usage == Usage(prompt_tokens=11, completion_tokens=4)


async def test_context_entries_headers_and_the_token_reach_the_agent(served: Served) -> None:
    """A message's context entries are the run's context; headers and the bearer token go along."""
    context = [{"description": "the notebook's table", "value": "sales.csv, 3 rows"}]
    async with ChatClient(
        url=served.url("/agent"), protocol="ag-ui", token="s3cret", headers={"X-Team": "nb"}
    ) as client:
        reply = await client.ask({"message": "hi", "context": context}, timeout=TIMEOUT)
    assert reply.text.strip() == "You said: hi"
    ((headers, body),) = served.seen
    assert headers["authorization"] == "Bearer s3cret" and headers["x-team"] == "nb"
    assert body["context"] == context
    assert [m["role"] for m in body["messages"]] == ["user"]


async def test_the_agent_state_is_kept_sent_back_and_announced(served: Served) -> None:
    """STATE_SNAPSHOT then STATE_DELTA: agent_state, one event each, and the next run carries it."""
    changes: list[tuple[str, Any]] = []
    async with ChatClient(url=served.url("/state"), protocol="ag-ui") as client:
        assert client.agent_state is None
        client.on("agent_state", lambda conversation, state: changes.append((conversation, state)))
        await client.ask("count", timeout=TIMEOUT)
        assert client.agent_state == {"count": 2, "seen": [1]}
        reply = await client.ask("again", timeout=TIMEOUT)
    assert reply.text == "counted 3"
    conversation = client.conversation_id
    assert changes[:2] == [
        (conversation, {"count": 1, "seen": [1]}),
        (conversation, {"count": 2, "seen": [1]}),
    ]
    assert [body.get("state") for _, body in served.seen] == [None, {"count": 2, "seen": [1]}]
    assert ChatClient(url="ws://127.0.0.1:9/ws").agent_state is None  # v1: no agent state


async def test_a_dropped_run_is_run_again_and_the_reply_restarts(served: Served) -> None:
    """The stream breaks mid-reply: the run starts again from its user message, marked restarted."""
    restarts: list[str] = []
    async with ChatClient(
        url=served.url("/flaky"), protocol="ag-ui", reconnect_interval=0.01, jitter=0
    ) as client:
        client.on("restart", restarts.append)
        items: list[Any] = []
        async for item in client.stream("tell me"):
            items.append(item)
    kinds = [type(item).__name__ for item in items]
    assert "ReplyRestarted" in kinds
    after = items[kinds.index("ReplyRestarted") + 1 :]
    assert [getattr(i, "response", None) for i in after if getattr(i, "type", "") == "token"] == [
        "the whole reply"
    ]
    assert len(restarts) == 1
    first, again = (body for _, body in served.seen)
    assert [m["role"] for m in again["messages"]] == ["user"]  # the history rolled back
    assert first["messages"][0]["id"] == again["messages"][0]["id"] == restarts[0]


async def test_the_panel_shows_the_agent_state_in_a_collapsible_view(served: Served) -> None:
    """An "Agent state" <details> above the controls, pretty JSON, redone on each state change."""
    with recording_comms():
        chat = ChatWidget(url=served.url("/state"), protocol="ag-ui")
        try:
            assert not any("Agent state" in getattr(c, "value", "") for c in chat.children)
            await chat.ask("count", timeout=TIMEOUT)
            (view,) = [c for c in chat.children if "Agent state" in getattr(c, "value", "")]
            assert view.value.startswith('<details class="nbchat-agent-state">')
            assert "&quot;count&quot;: 2," in view.value and "\n  &quot;seen&quot;" in view.value
            assert chat.children[-1] is chat._input
            await chat.ask("again", timeout=TIMEOUT)
            assert "&quot;count&quot;: 4," in view.value
        finally:
            await chat.aclose()
