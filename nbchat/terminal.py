"""``nbchat chat``: a terminal client that streams replies and shows tool calls as they run."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TextIO

from .client import ChatClient, ReplyRestarted
from .exceptions import NbchatError
from .protocol import ServerMessage, TokenMessage, ToolCall, ToolCallMessage, ToolResultMessage

__all__ = ["chat_once", "chat_repl", "format_tool_call"]

PROMPT = "you> "


def format_tool_call(call: ToolCall) -> str:
    """One line per tool call state, e.g. ``[calculator running] {"expression": "6*7"}``."""
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    line = f"[{call.name} {call.status}] {arguments}"
    if call.status != "running":
        line += f" -> {json.dumps(call.result, ensure_ascii=False, default=str)}"
    return line


async def chat_once(client: ChatClient, text: str, out: TextIO = sys.stdout) -> None:
    """Send ``text`` and print the reply as it streams, tool calls on their own lines."""
    at_line_start = True
    async for message in client.stream(text):
        at_line_start = _print_message(message, out, at_line_start)
    if not at_line_start:
        out.write("\n")
    out.flush()


def _print_message(
    message: ServerMessage | ReplyRestarted, out: TextIO, at_line_start: bool
) -> bool:
    if isinstance(message, ReplyRestarted):
        out.write(("" if at_line_start else "\n") + "[the server lost the reply: it starts over]\n")
        out.flush()
        return True
    if isinstance(message, TokenMessage):
        out.write(message.response)
        out.flush()
        return message.response.endswith("\n")
    if isinstance(message, ToolCallMessage | ToolResultMessage):
        if not at_line_start:
            out.write("\n")
        for call in message.tool_calls:
            out.write(format_tool_call(call) + "\n")
        out.flush()
        return True
    return at_line_start


async def chat_repl(
    client: ChatClient, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout
) -> None:
    """Read lines and answer each until end of input or ``/quit``."""
    loop = asyncio.get_running_loop()
    while True:
        out.write(PROMPT)
        out.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        if not line or line.strip() in {"/quit", "/exit"}:
            out.write("\n")
            return
        if line.strip():
            try:
                await chat_once(client, line.strip(), out)
            except NbchatError as exc:
                out.write(f"error: {exc}\n")
