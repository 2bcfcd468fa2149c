"""Real AG-UI and AI SDK servers for tests and benchmarks: pydantic-ai's adapters under uvicorn.

One pydantic-ai ``Agent`` (an ``OpenAIChatModel`` in front of the scripted
upstream of ``tests/openai_upstream.py``, with the server tool ``add``) served
by ``AGUIAdapter`` at ``/agent`` and ``VercelAIAdapter`` at ``/chat``, plus the
wrong answers a misconfigured URL meets: an HTML page at ``/page``, 404
elsewhere, 405 from ``/get-only``, and ``/hang``: an event stream that
opens and never says anything.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2
import uvicorn
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.ui.ag_ui import AGUIAdapter
from pydantic_ai.ui.vercel_ai import VercelAIAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.openai_upstream import Upstream

__all__ = ["Agents", "serving"]


@dataclass
class Agents:
    """Where the agents listen, and the upstream that scripts their model."""

    base: str
    upstream: Upstream

    @property
    def agui(self) -> str:
        """The AG-UI endpoint."""
        return f"{self.base}/agent"

    @property
    def aisdk(self) -> str:
        """The AI SDK endpoint."""
        return f"{self.base}/chat"


def make_agent(upstream: Upstream, http: httpx2.AsyncClient) -> Agent[None, str]:
    """The agent both adapters serve: the scripted model and one server tool."""
    provider = OpenAIProvider(base_url=upstream.base_url, api_key="test", http_client=http)
    model = OpenAIChatModel("scripted", provider=provider)
    agent: Agent[None, str] = Agent(model)

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return agent


def app(agent: Agent[None, str]) -> Starlette:
    """The Starlette app: both adapters and the wrong answers."""

    async def agui(request: Request) -> Response:
        return await AGUIAdapter.dispatch_request(request, agent=agent)

    async def aisdk(request: Request) -> Response:
        return await VercelAIAdapter.dispatch_request(request, agent=agent)

    async def page(request: Request) -> Response:
        return HTMLResponse("<html><body>Welcome</body></html>")

    async def hang(request: Request) -> Response:
        async def silence() -> AsyncIterator[bytes]:
            yield b'data: {"type": "RUN_STARTED", "threadId": "t", "runId": "r"}\n\n'
            await asyncio.Event().wait()

        return StreamingResponse(silence(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/agent", agui, methods=["POST"]),
            Route("/chat", aisdk, methods=["POST"]),
            Route("/page", page, methods=["GET", "POST"]),
            Route("/hang", hang, methods=["POST"]),
            Route("/get-only", page, methods=["GET"]),
        ]
    )


@asynccontextmanager
async def serving() -> AsyncIterator[Agents]:
    """The scripted upstream and both adapters under uvicorn on a loopback port (port 0)."""
    async with Upstream() as upstream, httpx2.AsyncClient() as http:
        config = uvicorn.Config(
            app(make_agent(upstream, http)), host="127.0.0.1", port=0, log_level="warning"
        )
        server = uvicorn.Server(config)
        # Bound and listening before uvicorn starts: a client connecting early waits in the
        # backlog, so nothing polls for the server to be up.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield Agents(f"http://127.0.0.1:{port}", upstream)
        finally:
            server.should_exit = True
            await task
