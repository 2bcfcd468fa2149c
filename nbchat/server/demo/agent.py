"""The demo agent: a deterministic responder with tools and per-conversation memory.

It stands in for a language model so notebooks, tests and benchmarks have a
backend whose every reply is predictable (notebooks are compared output to
output in CI). Rules are tried in order, first match wins, case-insensitively:

1. ``echo <text>``: the reply is ``<text>`` verbatim (rendering and injection tests).
2. ``count to N`` / ``stream N tokens``: N tokens ``1 2 3 ...`` (benchmarks).
3. ``call NAME {JSON arguments}`` / ``call NAME``: the client's tool ``NAME`` runs in the
   client (a notebook function, see ``ChatClient.tool``), then a sentence with its
   result; an unknown tool, bad arguments or a raising function: a sentence with the error.
4. arithmetic such as ``What is 6*7?``: the ``calculator`` tool, then the result.
5. ``time`` / ``date`` / ``clock``: the ``current_time`` tool.
6. ``network`` / ``internet`` / ``wifi`` / ``dns`` / ``connection``: ``network_check``.
7. ``my name is X``: remembered; ``what is my name``: recalled.
8. ``what did I say`` / ``what did I ask``: the previous message of the conversation.
9. anything else: a friendly reply naming the turn and what the agent can do, and, for a
   message carrying context (``@df``, :func:`~nbchat.server.current_context`), the first
   line of each description: the proof that it arrived.

A message with attachments is first answered with a line naming each (name,
type, size), then by the rules: a stand-in for a model that looks at them.

The explicit commands (1, 2, 3) come first so that ``echo 1+1`` echoes.

This module holds the rules and the tools they dispatch to; reading a message
(arithmetic, words, a name) is ``parsing.py``, and the pace of the tokens is
``pace.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ...attachments import describe
from ...exceptions import ToolArgumentsError, ToolError
from ...protocol import TokenMessage, ToolCall, ToolCallMessage, ToolResultMessage
from ...toolspec import parse_arguments, serialize_result
from ..responder import (
    Conversations,
    ResponderMessage,
    current_attachments,
    current_client_tools,
    current_context,
)
from .pace import Pace
from .parsing import find_arithmetic, first_name, split_tokens, stream_tokens

# find_arithmetic and split_tokens are also the agent's public helpers, as before the split.
from .tools import calculator, current_time, network_check

__all__ = ["MAX_COUNT", "DemoAgent", "find_arithmetic", "split_tokens"]

MAX_COUNT = 100_000
"""The most tokens ``count to N`` streams."""

_ECHO = re.compile(r"\A\s*echo\s(.*)\Z", re.IGNORECASE | re.DOTALL)
_COUNT = re.compile(r"\b(?:count to\s+(\d+)|stream\s+(\d+)\s+tokens?)\b", re.IGNORECASE)
_CALL = re.compile(r"\A\s*call\s+([A-Za-z0-9_-]{1,64})\s*(\{.*\})?\s*\Z", re.IGNORECASE | re.DOTALL)
_TIME = re.compile(r"\b(?:time|date|clock)\b", re.IGNORECASE)
_NETWORK = re.compile(
    r"\b(?:networks?|internet|wi-?fi|dns|connections?|connectivity)\b", re.IGNORECASE
)
_SET_NAME = re.compile(r"\bmy name is\s+(.+)", re.IGNORECASE | re.DOTALL)
_GET_NAME = re.compile(
    r"\b(?:what(?:'s|\s+is)\s+my\s+name|who\s+am\s+i|do\s+you\s+(?:know|remember)\s+my\s+name)\b",
    re.IGNORECASE,
)
_RECALL = re.compile(r"\bwhat did i (?:just )?(?:say|ask|write)\b", re.IGNORECASE)

_MAX_COUNT_DIGITS = len(str(MAX_COUNT))
_MAX_REMEMBERED = 2000
"""Characters of a message kept for ``what did I say``: memory per conversation is bounded."""
_MAX_ARITHMETIC_TEXT = 4000
"""Longer messages are not searched for arithmetic (the calculator takes 200 characters):
the search is linear, and this bounds it to a few milliseconds of the loop."""


@dataclass
class _Memory:
    """What the agent remembers of one conversation."""

    turns: int = 0
    name: str | None = None
    previous: str | None = None
    """The user message before the current one."""
    last: str | None = None


class DemoAgent:
    """A :class:`~nbchat.server.Responder` that answers by rules, word by word.

    ``delay`` is the pace in seconds per token (0 for tests and benchmarks):
    token *k* of a reply is due ``k * delay`` after the reply started, the way
    a model streams at its own rate. A token that comes late (a busy server)
    does not push the later ones back: the reply catches up, so it lasts
    ``tokens * delay`` however many replies share the loop. Memory is kept per
    conversation for the agent's lifetime, for at most ``max_conversations``
    conversations and ``max_per_client`` of one client's (least recently used
    dropped, the client's own first: one client cannot make others forget).
    """

    def __init__(
        self, delay: float = 0.0, *, max_conversations: int = 10_000, max_per_client: int = 100
    ) -> None:
        self.delay = delay
        self._memory: Conversations[_Memory] = Conversations(max_conversations, max_per_client)
        self.description = "demo agent"
        """What answers, for the handshake's ``Nbchat-Backend`` header and the panel's."""

    # Public methods

    async def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
        """Stream the reply to ``text``: tool calls and their results, then tokens."""
        memory = self._remember(conversation_id, text)
        attachments = current_attachments()
        if attachments:
            named = ", ".join(describe(attachment) for attachment in attachments)
            count = f"{len(attachments)} attachment{'s' * (len(attachments) > 1)}"
            async for message in self._say(f"I received {count}: {named}.\n\n"):
                yield message
        handler = self._choose(text)
        async for message in handler(conversation_id, text, memory):
            yield message

    def memory_of(self, conversation_id: str) -> dict[str, Any]:
        """What is remembered of a conversation (empty if nothing): for tests and debugging."""
        memory = self._memory.get(conversation_id)
        return {} if memory is None else dict(memory.__dict__)

    @property
    def max_conversations(self) -> int:
        """Conversations remembered in all; the least recently used is forgotten first."""
        return self._memory.total

    # Private methods

    def _remember(self, conversation_id: str, text: str) -> _Memory:
        memory = self._memory.get(conversation_id) or _Memory()
        self._memory.put(conversation_id, memory)  # most recently used, then bounded
        memory.turns += 1
        if len(text) > _MAX_REMEMBERED:
            text = text[:_MAX_REMEMBERED] + "..."
        memory.previous, memory.last = memory.last, text
        return memory

    def _choose(self, text: str) -> Callable[[str, str, _Memory], AsyncIterator[ResponderMessage]]:
        if _ECHO.match(text):
            return self._echo
        if _COUNT.search(text):
            return self._count
        if _CALL.match(text):
            return self._call
        if len(text) <= _MAX_ARITHMETIC_TEXT and find_arithmetic(text) is not None:
            return self._calculate
        if _TIME.search(text):
            return self._time
        if _NETWORK.search(text):
            return self._network
        if _SET_NAME.search(text):
            return self._set_name
        if _GET_NAME.search(text):
            return self._get_name
        if _RECALL.search(text):
            return self._recall
        return self._fallback

    async def _say(self, text: str) -> AsyncIterator[ResponderMessage]:
        pace = Pace(self.delay)
        for token in stream_tokens(text, MAX_COUNT):
            await pace.next()
            yield TokenMessage(response=token)

    async def _echo(self, cid: str, text: str, memory: _Memory) -> AsyncIterator[ResponderMessage]:
        match = _ECHO.match(text)
        assert match is not None
        async for message in self._say(match.group(1)):
            yield message

    async def _count(self, cid: str, text: str, memory: _Memory) -> AsyncIterator[ResponderMessage]:
        match = _COUNT.search(text)
        assert match is not None
        digits = (match.group(1) or match.group(2)).lstrip("0") or "0"
        # Compare lengths first: int() of a million digits is quadratic (and refused by Python).
        if len(digits) > _MAX_COUNT_DIGITS or int(digits) > MAX_COUNT:
            async for message in self._say(f"I can count to at most {MAX_COUNT}."):
                yield message
            return
        pace = Pace(self.delay)
        for number in range(1, int(digits) + 1):
            await pace.next()
            yield TokenMessage(response=str(number) if number == 1 else f" {number}")

    async def _call(self, cid: str, text: str, memory: _Memory) -> AsyncIterator[ResponderMessage]:
        match = _CALL.match(text)
        assert match is not None
        name = match.group(1)
        try:
            arguments = parse_arguments(match.group(2), name)
        except ToolArgumentsError as exc:
            async for message in self._say(f"I could not call {name}: {exc}."):
                yield message
            return
        call = ToolCall(
            id=_call_id(cid, memory.turns, name), name=name, arguments=arguments, runs_in="client"
        )
        yield ToolCallMessage(tool_calls=[call])
        finished = await current_client_tools().call(name, arguments, call_id=call.id)
        yield ToolResultMessage(tool_calls=[finished])
        if (
            finished.status == "done"
            and isinstance(finished.result, str)
            and "\n" in finished.result
        ):
            # Several lines (a table's summary): shown as they are, not as one JSON string.
            fence = "~~~~" if "```" in finished.result else "```"
            reply = f"{name} returned:\n\n{fence}\n{finished.result}\n{fence}\n"
        elif finished.status == "done":
            reply = f"{name} returned {serialize_result(finished.result).text}."
        else:
            reply = f"{name} failed: {finished.result}"
        async for message in self._say(reply):
            yield message

    async def _calculate(
        self, cid: str, text: str, memory: _Memory
    ) -> AsyncIterator[ResponderMessage]:
        expression = find_arithmetic(text)
        assert expression is not None
        call = ToolCall(
            id=_call_id(cid, memory.turns, "calculator"),
            name="calculator",
            arguments={"expression": expression},
        )
        yield ToolCallMessage(tool_calls=[call])
        await asyncio.sleep(self.delay)
        try:
            result = calculator(expression)
        except ToolError as exc:
            yield _finished(call, "error", str(exc))
            reply = f"I could not compute {expression}: {exc}."
        else:
            yield _finished(call, "done", result)
            reply = f"{expression} = {result}."
        async for message in self._say(reply):
            yield message

    async def _time(self, cid: str, text: str, memory: _Memory) -> AsyncIterator[ResponderMessage]:
        call = ToolCall(id=_call_id(cid, memory.turns, "current_time"), name="current_time")
        yield ToolCallMessage(tool_calls=[call])
        await asyncio.sleep(self.delay)
        now = current_time()
        yield _finished(call, "done", now)
        reply = f"It is {now['iso']} ({now['timezone']}, UTC{now['utc_offset']})."
        async for message in self._say(reply):
            yield message

    async def _network(
        self, cid: str, text: str, memory: _Memory
    ) -> AsyncIterator[ResponderMessage]:
        call = ToolCall(id=_call_id(cid, memory.turns, "network_check"), name="network_check")
        yield ToolCallMessage(tool_calls=[call])
        try:
            report = await asyncio.to_thread(network_check)  # file reads and getaddrinfo
        except (ToolError, OSError) as exc:
            yield _finished(call, "error", str(exc))
            reply = f"I could not inspect this machine's network: {exc}."
        else:
            yield _finished(call, "done", report)
            reply = _diagnose(report)
        async for message in self._say(reply):
            yield message

    async def _set_name(
        self, cid: str, text: str, memory: _Memory
    ) -> AsyncIterator[ResponderMessage]:
        match = _SET_NAME.search(text)
        assert match is not None
        name = first_name(match.group(1))
        if name:
            memory.name = name
            reply = f"Nice to meet you, {name}! I will remember your name in this conversation."
        else:
            reply = "I did not catch your name. Tell me with: my name is ..."
        async for message in self._say(reply):
            yield message

    async def _get_name(
        self, cid: str, text: str, memory: _Memory
    ) -> AsyncIterator[ResponderMessage]:
        if memory.name is None:
            reply = "I don't know your name yet. Tell me with: my name is ..."
        else:
            reply = f"Your name is {memory.name}."
        async for message in self._say(reply):
            yield message

    async def _recall(
        self, cid: str, text: str, memory: _Memory
    ) -> AsyncIterator[ResponderMessage]:
        if memory.previous is None:
            reply = "This is the first message of our conversation, so nothing yet."
        else:
            reply = f"You said: {memory.previous}"
        async for message in self._say(reply):
            yield message

    async def _fallback(
        self, cid: str, text: str, memory: _Memory
    ) -> AsyncIterator[ResponderMessage]:
        quoted = " ".join(text[:1000].split())
        if len(quoted) > 200:
            quoted = quoted[:200] + "..."
        reply = (
            f"You said: {quoted}\n\n"
            f"This is message {memory.turns} of our conversation. I am the nbchat demo agent: "
            "I can compute arithmetic (What is 6*7?), tell the time, check this machine's "
            "network, and remember your name (My name is ...)."
        )
        seen = [item.value.partition("\n")[0][:200] for item in current_context()]
        if seen:
            reply += "\n\nFrom your notebook:\n" + "\n".join(f"- {line}" for line in seen)
        async for message in self._say(reply):
            yield message


def _call_id(conversation_id: str, turn: int, tool: str) -> str:
    """A tool call id that is unique per conversation turn and the same on every run."""
    digest = hashlib.sha256(conversation_id.encode()).hexdigest()[:8]
    return f"call-{digest}-{turn}-{tool}"


def _finished(call: ToolCall, status: str, result: Any) -> ToolResultMessage:
    return ToolResultMessage(
        tool_calls=[call.model_copy(update={"status": status, "result": result})]
    )


def _diagnose(report: dict[str, Any]) -> str:
    """A short diagnosis of a ``network_check`` report, with concrete steps."""
    up = report["interfaces_up"]
    dns = report["dns"]
    lines = ["Here is what I found on this machine:", ""]
    lines.append(f"- Interfaces up: {', '.join(up) if up else 'none (besides loopback)'}")
    servers = ", ".join(dns["nameservers"]) or "none"
    lines.append(f"- DNS nameservers: {servers} (from {dns['file']})")
    localhost = ", ".join(report["localhost"]) or "does not resolve"
    lines.append(f"- localhost: {localhost}")
    lines.append("")
    steps: list[str] = []
    problems = report["problems"]
    if problems:
        lines.append("Problems: " + "; ".join(problems) + ".")
    else:
        lines.append("The local configuration looks fine, so the problem is probably further out.")
    if not up:
        steps.append("Turn Wi-Fi on or plug the cable in, then check the link (`ip link`).")
    if not dns["nameservers"]:
        steps.append("Set a DNS server (for example your router's) in the network settings.")
    if not report["localhost"]:
        steps.append("Restore the line `127.0.0.1 localhost` in /etc/hosts.")
    steps.append("Restart the router or modem and wait a minute for it to come back.")
    steps.append(
        "Run `ping 1.1.1.1`, then `ping example.com`: if only the second fails, the problem is DNS."
    )
    lines.append("")
    lines.append("To fix it:")
    lines.extend(f"{number}. {step}" for number, step in enumerate(steps, 1))
    return "\n".join(lines)
