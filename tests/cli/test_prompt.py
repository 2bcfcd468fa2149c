"""``nbchat chat``'s terminal client against the real demo server: streamed text, tool lines,
commands, connection notices, and the interactive prompt in a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import pty
import re
import struct
import sys
import termios
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from nbchat import ChatClient
from nbchat.cli.prompt import HELP, PROMPT, chat_once, chat_repl, format_tool_call
from nbchat.config import DEMO_DELAY
from nbchat.protocol import ToolCall
from nbchat.server import DemoServer, serve_demo
from tests.helpers import FAST, TIMEOUT, free_port, scripted_server

pytestmark = pytest.mark.loopback

ROOT = Path(__file__).resolve().parents[2]


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


# chat_repl's commands and connection notices, read from a pipe


async def test_help_and_new_conversation(client: ChatClient) -> None:
    """/help lists the commands; /new starts a conversation that knows nothing yet."""
    before = client.conversation_id
    printed = await repl(client, "my name is Ada\n/help\n/new\nwhat is my name\n")
    assert HELP in printed
    assert "Nice to meet you, Ada!" in printed
    assert "[a new conversation]\n" in printed
    assert "I don't know your name yet." in printed
    assert client.conversation_id != before


async def test_an_unknown_command_lists_the_commands_and_is_never_sent(client: ChatClient) -> None:
    """/bogus is one line naming the commands; a path-like or // message still goes out."""
    printed = await repl(client, "/bogus\n//count to 2\n/usr/bin/env count to 3\n")
    assert (
        "unknown command /bogus: the commands are /new, /help, /quit, /exit (start with // to "
        "send a message that begins with /)\n" in printed
    )
    assert "bogus" not in printed.replace("unknown command /bogus", "")
    assert "1 2\n" in printed and "1 2 3\n" in printed


async def test_a_server_that_dies_is_reported_while_waiting_for_input() -> None:
    """With nothing typed, a lost server is said at once, and so is giving up on it."""
    server = await serve_demo(port=0)
    client = ChatClient(url=server.url, max_reconnect_attempts=2, **FAST)
    read_end, write_end = os.pipe()
    screen = Screen("is gone")
    try:
        await client.connect()
        with open(read_end, encoding="utf-8") as stdin:
            session = asyncio.ensure_future(chat_repl(client, stdin, screen))
            await server.close()
            await asyncio.wait_for(screen.shown.wait(), TIMEOUT)
            os.close(write_end)  # end of input: the session ends
            await asyncio.wait_for(session, TIMEOUT)
    finally:
        await client.disconnect()
        await server.close()
    assert screen.getvalue() == (
        f"{PROMPT}\n[lost the connection to {server.url}: reconnecting]\n"
        f"[the server at {server.url} is gone (gave up after 2 attempts): "
        "start it again and send a message, or /quit]\n"
        "\n"
    )


async def test_a_notice_during_a_reply_starts_its_own_line() -> None:
    """A server restarted mid-reply: each notice on its own line, no empty line, then the reply."""
    server = await serve_demo(port=0, delay=0.05)
    port = server.port
    client = ChatClient(url=server.url, max_reconnect_attempts=50, **FAST)
    read_end, write_end = os.pipe()
    os.write(write_end, b"count to 8\n")
    screen = Screen("1 2 3 ")
    try:
        await client.connect()
        with open(read_end, encoding="utf-8") as stdin:
            session = asyncio.ensure_future(chat_repl(client, stdin, screen))
            await asyncio.wait_for(screen.shown.wait(), TIMEOUT)
            await server.close()
            server = await serve_demo(port=port, delay=0)
            os.close(write_end)  # end of input once the reply is complete
            await asyncio.wait_for(session, TIMEOUT)
    finally:
        await client.disconnect()
        await server.close()
    before, rest = screen.getvalue().split("\n", 1)
    assert before.startswith(f"{PROMPT}1 2 3 ")
    assert rest == (
        f"[lost the connection to {server.url}: reconnecting]\n"
        f"[reconnected to {server.url}]\n"
        "[the server lost the reply: it starts over]\n"
        f"1 2 3 4 5 6 7 8\n{PROMPT}\n"
    )


async def test_a_message_to_a_server_still_gone_says_what_to_do() -> None:
    """Sending after the client gave up tries again, then says to start the server."""
    url = f"ws://127.0.0.1:{await free_port()}/ws"
    client = ChatClient(url=url, max_reconnect_attempts=1, **FAST)
    try:
        printed = await repl(client, "hello\n")
    finally:
        await client.disconnect()
    assert printed == (
        f"{PROMPT}error: cannot reach {url} (gave up after 1 attempts): "
        f"start the server, then send again\n{PROMPT}\n"
    )


# Interactive: the real command in a pseudo-terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]|\r")
"""Terminal control sequences and carriage returns: removed to read the screen as text."""


SHOWN_PROMPT = PROMPT.rstrip()
"""The prompt as a screen shows it: prompt_toolkit draws its trailing space as a cursor move."""


class Terminal:
    """``nbchat chat`` in a pseudo-terminal: keys go in, what it shows comes out as text."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.output = ""
        """Everything the process wrote, control sequences removed."""
        self._grew = asyncio.Event()
        self._master = -1
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Terminal:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self._master = master
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1",  # do not wait for a cursor-position answer
        }
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nbchat", "chat", "--url", self.url,
            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=environ,
            preexec_fn=_take_the_terminal,
        )  # fmt: skip
        os.close(slave)
        asyncio.get_running_loop().add_reader(master, self._read)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        asyncio.get_running_loop().remove_reader(self._master)
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        os.close(self._master)

    def _read(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: the process has closed the terminal
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self._master)
            return
        self.output = ANSI.sub("", self.output + data.decode("utf-8", "replace"))
        self._grew.set()

    def type(self, keys: str) -> None:
        """Send ``keys`` as typed (``\\r`` is Enter, ``\\x03`` Ctrl-C, ``\\x1b[A`` the Up arrow)."""
        os.write(self._master, keys.encode())

    async def shows(self, text: str, count: int = 1) -> None:
        """Wait until ``text`` has been shown ``count`` times."""

        async def wait() -> None:
            while self.output.count(text) < count:
                self._grew.clear()
                await self._grew.wait()

        try:
            await asyncio.wait_for(wait(), TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"{text!r} not shown {count} times in {self.output!r}") from None

    async def exit_code(self) -> int:
        """Wait for the process to end; its exit code."""
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), TIMEOUT)


def _take_the_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty, so Ctrl-C is SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def test_ctrl_c_stops_the_reply_and_arrows_edit_and_recall() -> None:
    """Ctrl-C ends a long reply but not the session; Left edits the line, Up recalls the last."""
    async with serve_demo(port=0, delay=DEMO_DELAY) as server, Terminal(server.url) as term:
        await term.shows(SHOWN_PROMPT)
        term.type("count to 10000\r")
        await term.shows("1 2 3 4 5 ")
        term.type("\x03")
        await term.shows("[stopped]\n")
        await term.shows(SHOWN_PROMPT, 2)  # the session goes on
        stopped_at = term.output.split("[stopped]")[0]
        assert " 9999 " not in stopped_at and "^C\n" in stopped_at  # the tty echoes ^C
        term.type("count to 3\x1b[D1\r")  # Left, then 1: "count to 13"
        await term.shows("11 12 13\n")
        term.type("What is 6*7?\r")
        await term.shows("6*7 = 42.\n")
        term.type("\x1b[A\r")  # Up: the last line again
        await term.shows("6*7 = 42.\n", 2)
        term.type("/quit\r")
        assert await term.exit_code() == 0
    assert "Traceback" not in term.output


async def test_commands_and_a_dying_server_in_the_terminal() -> None:
    """/help, /new and /quit work at the prompt; a server that dies is said while it waits."""
    server = await serve_demo(port=0, delay=0)
    try:
        async with Terminal(server.url) as term:
            await term.shows(f"nbchat chat: connected to {server.url} (/help for commands)\n")
            term.type("/help\r")
            await term.shows("/new   start a new conversation")
            term.type("my name is Ada\r")
            await term.shows("Nice to meet you, Ada!")
            term.type("/new\r")
            await term.shows("[a new conversation]\n")
            term.type("what is my name\r")
            await term.shows("I don't know your name yet.")
            term.type("\r")  # an empty line sends nothing: the last message stays the last
            term.type("what did I ask\r")
            await term.shows("You said: what is my name\n")
            await server.close()  # nothing typed: the prompt is waiting
            await term.shows(f"[lost the connection to {server.url}: reconnecting]\n")
            await term.shows(f"[the server at {server.url} is gone")
            term.type("/quit\r")
            assert await term.exit_code() == 0
    finally:
        await server.close()
    assert "Traceback" not in term.output
