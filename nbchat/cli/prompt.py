"""``nbchat chat``: a terminal client that streams replies and shows tool calls as they run.

On a terminal the prompt is prompt_toolkit's (line editing, arrow-key history);
Ctrl-C stops the reply being written, not the session; a connection that drops
is reported when it drops. Without a terminal (a pipe, a script) lines are read
plainly, so the same session can be scripted.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol, TextIO

from ..client.client import ChatClient, ReplyRestarted
from ..client.connection import ConnectionState
from ..exceptions import NbchatError, ReconnectExhausted
from ..protocol import (
    DoneMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    new_id,
)

__all__ = ["COMMANDS", "HELP", "PROMPT", "chat_once", "chat_repl", "format_tool_call"]

PROMPT = "you> "

HELP = (
    "Type a message and press Enter; Ctrl-C stops the reply being written.\n"
    "/new   start a new conversation (the server forgets nothing, the new one starts empty)\n"
    "/help  show this help\n"
    "/quit  leave (also /exit, or Ctrl-D on an empty line)\n"
    "A line starting with // is sent with one / (a message that starts with a slash).\n"
)
"""What ``/help`` prints: every command of the prompt."""

COMMANDS = ("/new", "/help", "/quit", "/exit")
"""The prompt's commands; any other ``/word`` is refused with this list, never sent."""

_COMMAND = re.compile(r"/[A-Za-z]+")
"""What a command looks like: a slash and a word alone (``/usr/bin ...`` is a message)."""


class Output(Protocol):
    """Where a reply is printed: ``sys.stdout``, a ``StringIO``, any text file."""

    def write(self, text: str, /) -> int:
        """Write ``text``; return its length."""

    def flush(self) -> None:
        """Push what was written to the screen."""


def format_tool_call(call: ToolCall) -> str:
    """One line per tool call state, e.g. ``[calculator running] {"expression": "6*7"}``."""
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    line = f"[{call.name} {call.status}] {arguments}"
    if call.status != "running":
        line += f" -> {json.dumps(call.result, ensure_ascii=False, default=str)}"
    return line


async def chat_once(client: ChatClient, text: str, out: Output = sys.stdout) -> bool:
    """Send ``text`` and print the reply as it streams, tool calls on their own lines.

    Returns True if the reply was stopped (cancelled) before it was complete.
    However the reply ends, even by an error or a timeout, the output ends at the
    start of a line, so what comes next (an error, the prompt) is not glued to it.
    """
    lines = out if isinstance(out, _Lines) else _Lines(out)
    cancelled = False
    try:
        async for message in client.stream(text):
            _print_message(message, lines)
            if isinstance(message, DoneMessage):
                cancelled = bool(message.cancelled)
    finally:
        lines.end_line()
        lines.flush()
    return cancelled


def _print_message(message: ServerMessage | ReplyRestarted, out: _Lines) -> None:
    if isinstance(message, ReplyRestarted):
        out.end_line()
        out.write("[the server lost the reply: it starts over]\n")
    elif isinstance(message, TokenMessage):
        out.write(message.response)
    elif isinstance(message, ToolCallMessage | ToolResultMessage):
        out.end_line()
        for call in message.tool_calls:
            out.write(format_tool_call(call) + "\n")
    else:
        return
    out.flush()


async def chat_repl(
    client: ChatClient,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    timeout: float | None = None,
) -> None:
    """Read lines and answer each until end of input or ``/quit``.

    On a terminal (``stdin`` and ``out`` both ttys) the prompt is prompt_toolkit's;
    otherwise lines are read plainly. Each reply may take ``timeout`` seconds.
    """
    interactive = stdin.isatty() and out.isatty()
    if interactive:
        out.write(f"nbchat chat: connected to {client.safe_url} (/help for commands)\n")
        out.flush()
    lines = _Lines(out)
    read = _prompt_reader() if interactive else _plain_reader(stdin, lines)
    unsubscribe = client.on("state", _StateReporter(client, lines).changed)
    try:
        while True:
            line = await read()
            if line is None:
                lines.write("\n")
                lines.flush()
                return
            text = line.strip()
            if text in {"/quit", "/exit"}:
                if not interactive:
                    lines.write("\n")
                    lines.flush()
                return
            if not text:
                continue
            if text == "/help":
                lines.write(HELP)
            elif text == "/new":
                client.conversation_id = new_id()
                lines.write("[a new conversation]\n")
            elif _COMMAND.fullmatch(text.split()[0]):
                lines.write(
                    f"unknown command {text.split()[0]}: the commands are {', '.join(COMMANDS)} "
                    "(start with // to send a message that begins with /)\n"
                )
            else:
                await _answer(client, text[1:] if text.startswith("//") else text, lines, timeout)
            lines.flush()
    finally:
        unsubscribe()


Reader = Callable[[], Awaitable[str | None]]
"""A coroutine function returning the next line typed, or None at end of input."""


def _plain_reader(stdin: TextIO, out: _Lines) -> Reader:
    """Lines from a pipe or file, each after a printed prompt (scripts and tests)."""
    loop = asyncio.get_running_loop()

    async def read() -> str | None:
        out.write(PROMPT)
        out.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        out.at_line_start = True  # the line typed ends the prompt's line; the reply follows
        return line or None

    return read


def _prompt_reader() -> Reader:
    """Lines from prompt_toolkit: editing, arrow-key history; Ctrl-C clears the line."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory

    session: PromptSession[str] = PromptSession(history=InMemoryHistory())

    async def read() -> str | None:
        while True:
            try:
                line: str = await session.prompt_async(PROMPT)
            except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh line, as in a shell
                continue
            except EOFError:  # Ctrl-D on an empty line
                return None
            return line

    return read


async def _answer(client: ChatClient, text: str, out: Output, timeout: float | None) -> None:
    """Print the reply to ``text``.

    The first Ctrl-C asks the server to stop the reply (what was written stays),
    a second one stops waiting for it.
    """
    loop = asyncio.get_running_loop()
    reply = asyncio.ensure_future(asyncio.wait_for(chat_once(client, text, out), timeout))
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and client.cancel():
            return  # the server ends the reply with done(cancelled); it prints what came
        reply.cancel()

    def schedule() -> None:
        loop.call_soon_threadsafe(interrupted)

    restore = _on_sigint(schedule)
    try:
        cancelled = await reply
    except asyncio.CancelledError:
        if not interrupts:
            raise  # not a Ctrl-C: the session itself is being cancelled
        out.write("[stopped]\n")
    except asyncio.TimeoutError:
        out.write(f"error: no complete reply within {timeout:g} s: ask again or raise --timeout\n")
    except ReconnectExhausted as exc:  # its own text advises connect(), which a person cannot
        out.write(
            f"error: cannot reach {exc.url} (gave up after {exc.attempts} attempts): "
            "start the server, then send again\n"
        )
    except NbchatError as exc:
        out.write(f"error: {exc}\n")
    else:
        if cancelled or interrupts:
            out.write("[stopped]\n")
    finally:
        restore()


def _on_sigint(handler: Callable[[], None]) -> Callable[[], None]:
    """Call ``handler`` on SIGINT (Ctrl-C) instead of interrupting; return the undo.

    Only the main thread may set signal handlers: elsewhere Ctrl-C keeps its meaning.
    """
    try:
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda signum, frame: handler())
    except ValueError:  # not the main thread
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)

    return restore


class _Lines:
    """An output that knows whether it is at the start of a line.

    A connection notice can arrive in the middle of a reply (or after the plain
    prompt); it then starts its own line instead of running on from the text.
    """

    def __init__(self, out: Output) -> None:
        self.out = out
        self.at_line_start = True

    def write(self, text: str, /) -> int:
        """Write ``text``, remembering whether it ended a line."""
        if text:
            self.at_line_start = text.endswith("\n")
        return self.out.write(text)

    def flush(self) -> None:
        """Flush the output underneath."""
        self.out.flush()

    def end_line(self) -> None:
        """Finish the current line, if text was left on it."""
        if not self.at_line_start:
            self.write("\n")


class _StateReporter:
    """Says on one line when a connection that was up drops, comes back, or is given up."""

    def __init__(self, client: ChatClient, out: _Lines) -> None:
        self.client = client
        self.out = out
        self.up = client.is_connected
        """True while the last thing said (or the start) is that the connection is up."""
        self.lost = False
        """True after saying the connection dropped, until it is back or given up."""

    def changed(self, state: ConnectionState) -> None:
        """The ``state`` listener: one line on each change a person needs to know about."""
        client = self.client
        if state is ConnectionState.CONNECTED:
            self.up = True
            if self.lost:
                self.lost = False
                self._say(f"[reconnected to {client.safe_url}]")
        elif state is ConnectionState.DISCONNECTED:
            if client.reconnecting:
                if self.up:
                    self.up, self.lost = False, True
                    self._say(f"[lost the connection to {client.safe_url}: reconnecting]")
            elif self.up or self.lost:
                self.up = self.lost = False
                self._say(f"[{_gone(client)}]")

    def _say(self, line: str) -> None:
        """Print ``line`` above the prompt if one is showing, else where the reply goes."""
        from prompt_toolkit.application import get_app_or_none, run_in_terminal

        app = get_app_or_none()
        if app is not None and app.is_running:
            run_in_terminal(lambda: self._write(line))
        else:
            self._write(line)

    def _write(self, line: str) -> None:
        self.out.end_line()
        self.out.write(line + "\n")
        self.out.flush()


def _gone(client: ChatClient) -> str:
    """Why the client stopped trying, with what the person can do about it."""
    failure = client.failure
    if isinstance(failure, ReconnectExhausted):
        return (
            f"the server at {client.safe_url} is gone (gave up after {failure.attempts} "
            "attempts): start it again and send a message, or /quit"
        )
    if failure is not None:
        return f"disconnected: {failure}"
    return f"disconnected from {client.safe_url}: send a message to reconnect, or /quit"
