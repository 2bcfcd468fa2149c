"""Assemble a reply from the server messages that answer one client message (pure).

Tokens are collected in a list and joined once, so a reply of n tokens costs
O(n) however it is read. Tool calls are merged by id: the ``tool_result`` for a
call replaces its ``running`` announcement in place, keeping the order the calls
were announced in, and the announced arguments when the result leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import (
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
)

__all__ = ["Reply", "ReplyBuilder"]


@dataclass
class Reply:
    """A complete (or failed) answer to one message."""

    message_id: str | None
    conversation_id: str | None
    text: str
    tool_calls: list[ToolCall]
    messages: list[ServerMessage]
    error: ErrorInfo | None = None
    cancelled: bool = False

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
        return f"<Reply {' '.join(parts)}>"


@dataclass
class ReplyBuilder:
    """Feed server messages in arrival order; ``done`` tells when the reply is complete."""

    message_id: str | None = None
    conversation_id: str | None = None
    messages: list[ServerMessage] = field(default_factory=list)
    done: bool = False
    error: ErrorInfo | None = None
    cancelled: bool = False
    _parts: list[str] = field(default_factory=list)
    _calls: dict[str, ToolCall] = field(default_factory=dict)

    def feed(self, message: ServerMessage) -> bool:
        """Take one message; return True once the reply is complete (done or error)."""
        self.messages.append(message)
        if type(message) is TokenMessage:  # the hot path: most messages are tokens
            self._parts.append(message.response)
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
        elif isinstance(message, ErrorMessage):
            self.error = message.error
            self.done = True
        return self.done

    @property
    def text(self) -> str:
        """The reply text so far."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

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
            messages=list(self.messages),
            error=self.error,
            cancelled=self.cancelled,
        )
