"""Assemble a reply from the server messages that answer one client message (pure).

Tokens are collected in a list and joined once, so a reply of n tokens costs
O(n) however it is read. Tool calls are merged by id: the ``tool_result`` for a
call replaces its ``running`` announcement in place, keeping the order the calls
were announced in, and the announced arguments when the result leaves them out.
A model's reasoning (``reasoning`` messages) is joined apart from the text, and
``done`` says what the reply cost (``usage``) and whether the model was cut at
its token limit (``truncated``).

The messages themselves are kept compactly: a plain token (no extra fields,
the reply's own ids) is kept as its text alone and becomes a ``TokenMessage``
again only when ``messages`` is read. A long reply is mostly tokens, and tens of
thousands of live pydantic objects make every garbage collection walk them: the
client's cost per message fell by about a third (benchmarks/client_throughput.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .protocol import (
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ReasoningMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    Usage,
)

__all__ = ["Reply", "ReplyBuilder"]


_Entry = ServerMessage | str
"""A logged message: the model, or just the text of a plain token."""


def _expand(
    entries: list[_Entry], message_id: str | None, conversation_id: str | None
) -> list[ServerMessage]:
    return [
        TokenMessage(response=entry, conversation_id=conversation_id, reply_to=message_id)
        if isinstance(entry, str)
        else entry
        for entry in entries
    ]


@dataclass
class Reply:
    """A complete (or failed) answer to one message."""

    message_id: str | None
    conversation_id: str | None
    text: str
    tool_calls: list[ToolCall]
    _entries: list[_Entry] = field(repr=False)
    error: ErrorInfo | None = None
    cancelled: bool = False
    reasoning: str = ""
    """The model's reasoning ("thinking"), every piece joined: untrusted, like ``text``."""
    usage: Usage | None = None
    """Tokens the reply cost (prompt and completion), when the server said."""
    truncated: bool = False
    """The model was cut at its token limit: the text ends where the limit fell."""

    @cached_property
    def messages(self) -> list[ServerMessage]:
        """Every server message of the reply, in arrival order (acks excluded)."""
        return _expand(self._entries, self.message_id, self.conversation_id)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        # Short and free of ids and times, so a notebook cell showing a Reply
        # compares equal from run to run (nbval).
        text = self.text if len(self.text) <= 300 else self.text[:300] + "…"
        parts = [repr(text)]
        if self.tool_calls:
            calls = ", ".join(f"{call.name}: {call.status}" for call in self.tool_calls)
            parts.append(f"tool_calls=[{calls}]")
        if self.error is not None:
            parts.append(f"error={self.error.code!r}")
        if self.cancelled:
            parts.append("cancelled")
        if self.truncated:
            parts.append("truncated")
        return f"<Reply {' '.join(parts)}>"


@dataclass
class ReplyBuilder:
    """Feed server messages in arrival order; ``done`` tells when the reply is complete."""

    message_id: str | None = None
    conversation_id: str | None = None
    done: bool = False
    error: ErrorInfo | None = None
    cancelled: bool = False
    usage: Usage | None = None
    truncated: bool = False
    _parts: list[str] = field(default_factory=list)
    _reasoning: list[str] = field(default_factory=list)
    _calls: dict[str, ToolCall] = field(default_factory=dict)
    _entries: list[_Entry] = field(default_factory=list)

    def feed(self, message: ServerMessage) -> bool:
        """Take one message; return True once the reply is complete (done or error)."""
        if type(message) is TokenMessage:  # the hot path: most messages are tokens
            text = message.response
            self._parts.append(text)
            plain = (
                not message.__pydantic_extra__
                and message.reply_to == self.message_id
                and message.conversation_id == self.conversation_id
            )
            self._entries.append(text if plain else message)
            return False
        self._entries.append(message)
        if isinstance(message, ReasoningMessage):
            self._reasoning.append(message.text)
        elif isinstance(message, ToolCallMessage | ToolResultMessage):
            for call in message.tool_calls:
                known = self._calls.get(call.id)
                if known is not None and known.arguments and not call.arguments:
                    # Servers often send only the result: keep the arguments announced earlier.
                    call = call.model_copy(update={"arguments": known.arguments})
                self._calls[call.id] = call
        elif isinstance(message, DoneMessage):
            self.done = True
            self.cancelled = bool(message.cancelled)
            self.usage = message.usage
            self.truncated = bool(message.truncated)
        elif isinstance(message, ErrorMessage):
            self.error = message.error
            self.done = True
        return self.done

    @property
    def messages(self) -> list[ServerMessage]:
        """The messages fed so far, in order (tokens rebuilt from their text)."""
        return _expand(self._entries, self.message_id, self.conversation_id)

    @property
    def text(self) -> str:
        """The reply text so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def reasoning(self) -> str:
        """The reasoning so far (``""`` when the model showed none)."""
        if len(self._reasoning) > 1:
            self._reasoning[:] = ["".join(self._reasoning)]
        return self._reasoning[0] if self._reasoning else ""

    def tool_call(self, call_id: str) -> ToolCall | None:
        """The call with this id at its latest status (arguments kept from its announcement)."""
        return self._calls.get(call_id)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Each tool call in announcement order, at its latest status."""
        return list(self._calls.values())

    def build(self) -> Reply:
        """Freeze what has arrived into a :class:`Reply`."""
        return Reply(
            message_id=self.message_id,
            conversation_id=self.conversation_id,
            text=self.text,
            tool_calls=self.tool_calls,
            _entries=list(self._entries),
            error=self.error,
            cancelled=self.cancelled,
            reasoning=self.reasoning,
            usage=self.usage,
            truncated=self.truncated,
        )
