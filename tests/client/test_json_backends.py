"""Custom JSON WebSocket backends through JsonProtocol, and peers that announced nothing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from nbchat import (
    ChatClient,
    DoneMessage,
    ProtocolError,
    ReplyTimeout,
    ServerError,
    TokenMessage,
    ToolCallMessage,
    ToolResultMessage,
)
from nbchat.notebook.widget import ChatWidget
from nbchat.protocol import CancelRequest
from nbchat.server import DemoServer
from tests.client.json_backends import EVENTS, SESSIONS, json_backend, json_backend_in_thread
from tests.helpers import TIMEOUT, attach
from tests.notebook.widget_comm import recording_comms

pytestmark = pytest.mark.loopback


def add(a: int, b: int) -> int:
    """Add two numbers (a client tool the backends never hear of)."""
    return a + b


async def test_a_backend_that_issues_sessions_gets_its_session_id_back() -> None:
    """The first message goes without a session, later ones echo the id the backend issued."""
    async with json_backend("sessions") as backend:
        chat = ChatClient(url=backend.url, protocol=SESSIONS)
        first = await chat.ask("hi", timeout=TIMEOUT)
        second = await chat.ask("again", timeout=TIMEOUT)
        assert first.text == "you said hi in s1" and second.text == "you said again in s1"
        assert backend.received == [
            {"message": "hi", "session_id": None},
            {"message": "again", "session_id": "s1"},
        ]
        await chat.disconnect()


async def test_streamed_tool_arguments_become_one_card_with_its_result() -> None:
    """tool_call_delta start and argument pieces, then tool_result: one done card."""
    async with json_backend("sessions") as backend:
        chat = ChatClient(url=backend.url, protocol=SESSIONS)
        reply = await chat.ask("weather please", timeout=TIMEOUT)
        (call,) = reply.tool_calls
        assert (call.name, call.arguments, call.status, call.result) == (
            "weather",
            {"city": "Paris"},
            "done",
            "sunny",
        )
        await chat.disconnect()


async def test_the_second_shape_streams_a_tool_card_and_text_and_reports_an_odd_frame() -> None:
    """stream() over the event-shaped backend; its undescribed frame is one error event."""
    async with json_backend("events") as backend:
        chat = ChatClient(url=backend.url, protocol=EVENTS)
        events = attach(chat, "error")
        kinds = [type(m) async for m in chat.stream("add them")]
        assert kinds == [ToolCallMessage, ToolResultMessage, TokenMessage, DoneMessage]
        (error,) = [args[0] for args in events.of("error")]
        assert isinstance(error, ProtocolError) and '"surprise"' in str(error.raw)
        assert backend.received == [
            {"prompt": "add them", "thread": chat.conversation_id, "model": "tiny"}
        ]
        assert (await chat.ask("more", timeout=TIMEOUT)).text.startswith("more on")
        await chat.disconnect()


@pytest.mark.parametrize(
    ("shape", "protocol", "line"),
    [("sessions", SESSIONS, "LLM API key is required"), ("events", EVENTS, "the model is asleep")],
)
async def test_a_backend_error_ends_the_reply_in_one_line(
    shape: str, protocol: object, line: str
) -> None:
    """The error frame's declared message field becomes the ServerError's message."""
    async with json_backend(shape) as backend:
        chat = ChatClient(url=backend.url, protocol=protocol)
        with pytest.raises(ServerError, match=line):
            await chat.ask("fail", timeout=TIMEOUT)
        await chat.disconnect()


def test_ask_sync_reaches_a_json_backend() -> None:
    """The blocking ask works over a JsonProtocol like over v1."""
    with json_backend_in_thread("events") as backend:
        chat = ChatClient(url=backend.url, protocol=EVENTS)
        try:
            assert chat.ask_sync("hello", timeout=TIMEOUT).text.startswith("hello on")
        finally:
            chat.close_sync()


async def test_a_widget_shows_a_json_backend_reply_with_its_tool_card() -> None:
    """ChatWidget(url=..., protocol=...) passes the protocol to its client and renders the turn."""
    async with json_backend("events") as backend:
        with recording_comms():
            chat = ChatWidget(url=backend.url, protocol=EVENTS)
            reply = await chat.ask("add them")
            assert reply.tool_calls[0].result == 42
            html = "\n".join(v for v in _values(chat))
            assert "add" in html and "add them on" in html
            await chat.aclose()


async def test_a_strict_backend_is_never_sent_what_it_did_not_ask_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A timeout, Stop and a stream left early stop here; tools, cancels never reach it."""
    caplog.set_level(logging.WARNING, "nbchat.client")
    async with json_backend("sessions") as backend:
        chat = ChatClient(url=backend.url, protocol=SESSIONS, tools=[add])
        with pytest.raises(ReplyTimeout):
            await chat.ask("wait", timeout=0.2)
        chat.send("wait")
        (stopped,) = list(chat.replies())
        assert chat.cancel()
        assert (await asyncio.wait_for(stopped, TIMEOUT)).cancelled
        backend.gate.set()  # the two stopped replies go on, on the backend's side
        async for _ in chat.stream("left early"):
            break
        after = await chat.ask("hi", timeout=TIMEOUT)
        assert after.text == "you said hi in s1"  # the rest of the stopped replies was theirs
        assert backend.hangups == 0 and backend.connections == 1
        # The stopped message was never written: only the three others ever left.
        assert [frame["message"] for frame in backend.received] == ["wait", "left early", "hi"]
        assert all(set(frame) == {"message", "session_id"} for frame in backend.received)
        assert "the server may still be generating" in caplog.text
        await chat.disconnect()


async def test_the_reference_server_announces_cancel_and_gets_it() -> None:
    """Against the reference server Stop still sends a cancel, and nothing stops locally."""
    server = await DemoServer.start(port=0, delay=0.01)
    try:
        chat = ChatClient(url=server.url)
        sent = attach(chat, "send")
        chat.send("count to 1000")
        await chat.connect()
        (reply,) = list(chat.replies())
        assert chat.cancel()
        assert (await asyncio.wait_for(reply, TIMEOUT)).cancelled
        assert any(isinstance(args[0], CancelRequest) for args in sent.of("send"))
        await chat.disconnect()
    finally:
        await server.close()


def _values(widget: ChatWidget) -> list[str]:
    values: list[str] = []

    def walk(node: object) -> None:
        for child in getattr(node, "children", ()):
            if isinstance(getattr(child, "value", None), str):
                values.append(child.value)
            walk(child)

    walk(widget)
    return values
