"""``nbchat chat``'s terminal client against the real demo server: streamed text, tool lines."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
from websockets.asyncio.server import ServerConnection

from nbchat import ChatClient
from nbchat.protocol import ToolCall
from nbchat.server import DemoServer, serve_demo
from nbchat.terminal import PROMPT, chat_once, chat_repl, format_tool_call
from tests.helpers import FAST, TIMEOUT, scripted_server


@pytest.fixture
async def client(demo: DemoServer) -> AsyncIterator[ChatClient]:
    """A connected client of the demo server."""
    async with ChatClient(url=demo.url) as chat:
        yield chat


async def once(client: ChatClient, text: str) -> str:
    """Everything ``chat_once`` printed for ``text``."""
    out = io.StringIO()
    await asyncio.wait_for(chat_once(client, text, out), TIMEOUT)
    return out.getvalue()


async def repl(client: ChatClient, typed: str) -> str:
    """Everything ``chat_repl`` printed while reading ``typed`` as its standard input."""
    out = io.StringIO()
    await asyncio.wait_for(chat_repl(client, io.StringIO(typed), out), TIMEOUT)
    return out.getvalue()


# format_tool_call


def test_a_running_call_shows_its_arguments_and_no_result() -> None:
    """A call still running has no result yet, so its line shows none."""
    call = ToolCall(id="t", name="calculator", arguments={"expression": "6*7"})
    assert format_tool_call(call) == '[calculator running] {"expression": "6*7"}'


def test_a_finished_call_shows_its_result_as_json() -> None:
    """Done and error calls end with ``-> result``, non-ASCII text kept readable."""
    done = ToolCall(id="t", name="calculator", arguments={}, status="done", result=42)
    error = ToolCall(id="t", name="lookup", arguments={"q": "café"}, status="error", result="nö")
    assert format_tool_call(done) == "[calculator done] {} -> 42"
    assert format_tool_call(error) == '[lookup error] {"q": "café"} -> "nö"'


def test_a_result_json_cannot_encode_is_shown_as_text() -> None:
    """A result that is not JSON (a datetime) is printed through ``str`` instead of failing."""
    when = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    call = ToolCall(id="t", name="clock", status="done", result={"at": when})
    assert format_tool_call(call) == '[clock done] {} -> {"at": "2026-01-02 03:04:00+00:00"}'


# chat_once


async def test_tool_calls_print_on_their_own_lines_before_the_reply(client: ChatClient) -> None:
    """The calculator's start and result are one line each, then the streamed text and a newline."""
    assert await once(client, "What is 6*7?") == (
        '[calculator running] {"expression": "6*7"}\n'
        '[calculator done] {"expression": "6*7"} -> 42\n'
        "6*7 = 42.\n"
    )


async def test_a_failed_tool_prints_its_error(client: ChatClient) -> None:
    """A tool that fails shows ``error`` and the reason, and the reply still follows."""
    printed = await once(client, "What is 1/0?")
    assert printed.splitlines() == [
        '[calculator running] {"expression": "1/0"}',
        '[calculator error] {"expression": "1/0"} -> "division by zero"',
        "I could not compute 1/0: division by zero.",
    ]


async def test_a_reply_ending_in_a_newline_gets_no_second_one(client: ChatClient) -> None:
    """Text that already ends a line is not followed by an empty line."""
    assert await once(client, "echo two\nlines\n") == "two\nlines\n"
    assert await once(client, "count to 3") == "1 2 3\n"


async def test_a_tool_call_after_text_starts_a_new_line() -> None:
    """When a tool starts mid-sentence, its line does not run on from the text."""

    async def handler(ws: ServerConnection) -> None:
        message = json.loads(await ws.recv())
        ids = {"conversation_id": message["conversation_id"], "reply_to": message["id"]}
        call = {"id": "t1", "name": "clock", "arguments": {}}
        for frame in (
            {"type": "ack", "id": message["id"], **ids},
            {"type": "token", "response": "Let me look", **ids},
            {"type": "tool_call", "tool_calls": [call], **ids},
            {"type": "tool_result", "tool_calls": [{**call, "status": "done", "result": 9}], **ids},
            {"type": "token", "response": "It is 9.", **ids},
            {"type": "done", **ids},
        ):
            await ws.send(json.dumps(frame))
        await ws.wait_closed()

    async with scripted_server(handler) as url, ChatClient(url=url) as client:
        printed = await once(client, "what time is it")
    assert printed == ("Let me look\n[clock running] {}\n[clock done] {} -> 9\nIt is 9.\n")


# chat_repl


async def test_repl_answers_each_line_in_one_conversation_until_quit(client: ChatClient) -> None:
    """Each line gets its reply after a prompt; blank lines are skipped; /quit ends the loop."""
    printed = await repl(client, "my name is Ada\n\n  what is my name  \n/quit\necho never\n")
    prompts = printed.split(PROMPT)
    assert prompts[0] == ""
    assert "Ada" in prompts[1]
    assert prompts[2] == ""  # the blank line: a new prompt, nothing sent
    assert "Ada" in prompts[3]
    assert prompts[4] == "\n"  # /quit: a clean line for the shell, and nothing after it
    assert "never" not in printed


@pytest.mark.parametrize("ending", ["", "/exit\n"])
async def test_repl_ends_at_end_of_input_or_exit(client: ChatClient, ending: str) -> None:
    """Ctrl-D (end of input) and /exit end the session as /quit does."""
    assert await repl(client, "count to 2\n" + ending) == f"{PROMPT}1 2\n{PROMPT}\n"


async def test_repl_reports_an_error_and_keeps_reading() -> None:
    """A refused connection is one ``error:`` line per message; the prompt comes back each time."""
    async with serve_demo(port=0, token="secret") as server:
        client = ChatClient(url=server.url)  # no token: the server answers 401
        try:
            printed = await repl(client, "hello\nhello again\n")
        finally:
            await client.disconnect()
    lines = printed.split(PROMPT)
    assert lines[0] == "" and lines[-1] == "\n"
    errors = lines[1:-1]
    assert len(errors) == 2
    assert all(line.startswith("error: ") and "401" in line for line in errors), errors


class Screen(io.StringIO):
    """Standard output that says when a given text has been printed."""

    def __init__(self, awaited: str) -> None:
        super().__init__()
        self.awaited = awaited
        self.shown = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.awaited in self.getvalue():
            self.shown.set()
        return written


async def test_a_reply_the_server_lost_is_said_to_start_over() -> None:
    """A backend restarted mid-reply answers afresh: one line says so, then the whole reply."""
    server = await serve_demo(port=0, delay=0.05)
    port = server.port
    client = ChatClient(url=server.url, max_reconnect_attempts=50, **FAST)
    screen = Screen("1 2 3 ")
    try:
        printing = asyncio.ensure_future(chat_once(client, "count to 8", screen))
        await asyncio.wait_for(screen.shown.wait(), TIMEOUT)
        await server.close()  # the replies it was generating are gone with it
        server = await serve_demo(port=port, delay=0)
        await asyncio.wait_for(printing, TIMEOUT)
    finally:
        await client.disconnect()
        await server.close()
    before, restarted, after = screen.getvalue().split("\n", 2)
    assert before.startswith("1 2 3 ")  # what had streamed before the server went away
    assert restarted == "[the server lost the reply: it starts over]"
    assert after == "1 2 3 4 5 6 7 8\n"
