"""What answers, named at the handshake (``Nbchat-Backend``) and shown in the panel's header."""

from __future__ import annotations

import pytest

from nbchat.client import ChatClient
from nbchat.server import ChatServer, DemoServer, OpenAIAgent
from tests.helpers import TIMEOUT
from tests.openai_upstream import Upstream

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(4 * TIMEOUT)]


async def test_the_demo_server_names_its_agent(demo: DemoServer) -> None:
    """A client of the reference server knows the demo agent answers, once connected."""
    async with ChatClient(url=demo.url) as client:
        assert client.backend == "demo agent"


async def test_a_model_behind_the_bridge_is_named_with_its_host() -> None:
    """The bridge announces its model and the API root it is served from, credentials redacted."""
    async with Upstream() as upstream:
        agent = OpenAIAgent(base_url=upstream.base_url.replace("://", "://ada:pw@"), model="tiny")
        async with ChatServer(agent) as server, ChatClient(url=server.url) as client:
            assert client.backend is not None
            assert client.backend.startswith("model 'tiny' at http://***:***@127.0.0.1")


def test_a_client_not_yet_connected_knows_nothing() -> None:
    """Before any connection there is no word from a server."""
    assert ChatClient(url="ws://127.0.0.1:9/ws").backend is None
