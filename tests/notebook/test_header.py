"""The panel's header names what answers, as the server announced it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nbchat.notebook.widget import ChatWidget
from nbchat.server import DemoServer, OpenAIAgent
from tests.helpers import TIMEOUT
from tests.notebook.widget_comm import RecordingComm, recording_comms
from tests.openai_upstream import Upstream

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(4 * TIMEOUT)]


@pytest.fixture
def comms() -> Iterator[list[RecordingComm]]:
    """Every widget made in the test records what it sends."""
    with recording_comms() as log:
        yield log


async def test_the_header_names_the_demo_agent_and_its_server(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """Against a server of its own choosing the header says what answers and where."""
    chat = ChatWidget(url=demo.url)
    await chat.client.connect()
    assert "demo agent" in chat._header.value and demo.url in chat._header.value
    await chat.aclose()


async def test_a_built_in_model_is_named_instead_of_a_loopback_port(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A panel running a model as its backend shows the model and its host, not ws://127.0.0.1."""
    monkeypatch.delenv("NBCHAT_WS_URL", raising=False)
    async with Upstream() as upstream:
        chat = ChatWidget(backend=OpenAIAgent(base_url=upstream.base_url, model="tiny"))
        await chat.client.connect()
        header = chat._header.value
        assert "model &#x27;tiny&#x27; at http://127.0.0.1" in header or "model 'tiny'" in header
        assert "ws://" not in header
        await chat.aclose()
