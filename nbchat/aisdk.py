"""The Vercel AI SDK UI message stream: history -> a chat request, stream parts -> v1 (pure).

A server speaking the AI SDK's UI message stream (header
``x-vercel-ai-ui-message-stream: v1``; pydantic-ai's ``VercelAIAdapter``, the
AI SDK's own ``toUIMessageStreamResponse``) takes a POST of the whole chat,
``{"trigger": "submit-message", "id": <chat id>, "messages": [UIMessage...]}``,
and answers with SSE ``data:`` lines, each one JSON part (``text-delta``,
``tool-input-available``, ``finish``...), ended by ``data: [DONE]``. As with
AG-UI the client holds the history (chat id = conversation id): the user's
messages and each assistant message with its text and tool parts.

:class:`Run` has the interface of :class:`nbchat.agui.Run`; its ``calls`` stay
empty: the client's own tools are not offered over this protocol (the AI SDK
declares frontend tools in the server's code, not in the request). Reasoning
parts become v1 ``reasoning`` messages (``Reply.reasoning``); token usage, where
the server reports it in the message metadata, ``done``'s ``usage``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from .attachments import describe
from .exceptions import ProtocolError
from .protocol import (
    ClientToolInfo,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ReasoningMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolRequest,
    ToolResultMessage,
    Usage,
    UserMessage,
    new_id,
)

__all__ = ["END", "STREAM_HEADER", "Chat", "Chats", "Run", "decode_part", "usage_of"]

STREAM_HEADER = "x-vercel-ai-ui-message-stream"
"""The response header naming the stream's version (``v1``)."""
END = object()
"""What :func:`decode_part` returns for ``[DONE]``, the stream's last line."""
MAX_CHATS = 100
"""Chats (conversations) whose history a client keeps; the least recently used go first."""


def decode_part(data: str) -> Any:
    """One SSE ``data`` field as a part (a dict with a ``type``), or :data:`END`."""
    if data.strip() == "[DONE]":
        return END
    try:
        part = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"an AI SDK stream part is not JSON: {data[:80]!r}", data) from exc
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise ProtocolError(f"an AI SDK stream part has no type: {data[:80]!r}", data)
    return part


_COUNTS = (
    ("inputTokens", "outputTokens"),  # the AI SDK 5's LanguageModelUsage
    ("promptTokens", "completionTokens"),  # the AI SDK 4's
    ("input_tokens", "output_tokens"),
    ("prompt_tokens", "completion_tokens"),
)


def usage_of(metadata: Any) -> Usage | None:
    """The token usage a message's metadata reports, if any.

    The stream has no usage part of its own: a server puts it in ``messageMetadata``
    (the AI SDK's documented way: ``messageMetadata: ({part}) => ({totalUsage:
    part.totalUsage})``), under ``totalUsage`` or ``usage``, in any of the spellings of
    :data:`_COUNTS`.
    """
    if not isinstance(metadata, dict):
        return None
    for key in ("totalUsage", "usage"):
        counts = metadata.get(key)
        if not isinstance(counts, dict):
            continue
        for prompt, completion in _COUNTS:
            found = [counts.get(prompt), counts.get(completion)]
            numbers = [n if isinstance(n, int) and not isinstance(n, bool) else None for n in found]
            if numbers != [None, None]:
                return Usage(prompt_tokens=numbers[0], completion_tokens=numbers[1])
    return None


class Chat:
    """One conversation: its UI messages, as the server wants them back."""

    def __init__(self, chat_id: str) -> None:
        self.id = chat_id
        self.messages: list[dict[str, Any]] = []
        self.state: Any = None


class Run:
    """One response stream -> v1 messages for the reply to ``message_id``."""

    def __init__(self, chat: Chat, message_id: str) -> None:
        self.thread = chat
        self.message_id = message_id
        self.finished = False
        self.calls: list[ToolRequest] = []
        self.usage: Usage | None = None
        """The tokens the reply cost, from its metadata (``finish``, ``message-metadata``)."""
        self._parts: list[dict[str, Any]] = []
        self._text: dict[str, dict[str, Any]] = {}
        self._tools: dict[str, dict[str, Any]] = {}
        chat.messages.append({"id": new_id(), "role": "assistant", "parts": self._parts})

    def feed(self, part: Any) -> list[ServerMessage]:
        """Take one decoded part; the v1 messages it makes."""
        if part is END:
            self.finished = True
            return []
        kind = part["type"]
        if kind == "text-delta":
            delta = part.get("delta") or ""
            entry = self._text.get(part.get("id", ""))
            if entry is None:
                entry = self._text[part.get("id", "")] = {"type": "text", "text": ""}
                self._parts.append(entry)
            entry["text"] += delta
            return [self.v1(TokenMessage, response=delta)] if delta else []
        if kind == "reasoning-delta":
            text = part.get("delta") or ""
            return [self.v1(ReasoningMessage, text=text)] if text else []
        if kind == "tool-input-available":
            call_id, name = part["toolCallId"], part.get("toolName", "tool")
            arguments = part.get("input") or {}
            self._tools[call_id] = entry = {
                "type": f"tool-{name}",
                "toolCallId": call_id,
                "state": "input-available",
                "input": arguments,
            }
            self._parts.append(entry)
            call = ToolCall(id=call_id, name=name, arguments=arguments)
            return [self.v1(ToolCallMessage, tool_calls=[call])]
        if kind in ("tool-output-available", "tool-output-error"):
            call_id = part["toolCallId"]
            entry = self._tools.get(call_id, {"type": "tool-tool", "input": {}})
            failed = kind == "tool-output-error"
            result = part.get("errorText") if failed else part.get("output")
            entry.update(
                {"state": "output-error" if failed else "output-available"}
                | ({"errorText": result} if failed else {"output": result})
            )
            call = ToolCall(
                id=call_id,
                name=entry["type"].removeprefix("tool-"),
                status="error" if failed else "done",
                result=result,
            )
            return [self.v1(ToolResultMessage, tool_calls=[call])]
        if kind in ("finish", "message-metadata"):
            self.usage = usage_of(part.get("messageMetadata")) or self.usage
        if kind == "finish":
            self.finished = True
            return [self.v1(DoneMessage, usage=self.usage)]
        if kind == "abort":
            self.finished = True
            return [self.v1(DoneMessage, cancelled=True)]
        if kind == "error":
            self.finished = True
            text = " ".join(str(part.get("errorText", "")).split()) or "the server's stream failed"
            return [self.v1(ErrorMessage, error=ErrorInfo(code="stream_error", message=text))]
        return []  # start, steps, reasoning, sources, files, data, metadata: no card for them

    def v1(self, kind: type[ServerMessage], **fields: Any) -> ServerMessage:
        """A v1 message of this run's reply."""
        return kind(conversation_id=self.thread.id, reply_to=self.message_id, **fields)


class Chats:
    """The histories of a client's conversations and the requests made of them (bounded)."""

    def __init__(self, max_chats: int = MAX_CHATS) -> None:
        self.max_chats = max_chats
        self._chats: OrderedDict[str, Chat] = OrderedDict()
        self._marks: dict[str, int] = {}

    def state(self, conversation_id: str) -> Any:
        """Always None: the AI SDK stream has no shared state."""
        return None

    def start(
        self,
        message: UserMessage,
        tools: list[ClientToolInfo],
        context: list[Any] = (),  # type: ignore[assignment]
    ) -> tuple[dict[str, Any], Run]:
        """The request for a user message and its reader (again: the history rolled back)."""
        assert message.id is not None
        chat_id = message.conversation_id or message.id
        chat = self._chats.pop(chat_id, None) or Chat(chat_id)
        self._chats[chat_id] = chat
        while len(self._chats) > self.max_chats:
            self._chats.popitem(last=False)
        mark = self._marks.setdefault(message.id, len(chat.messages))
        del chat.messages[mark:]
        chat.messages.append({"id": message.id, "role": "user", "parts": _parts(message)})
        body = {"trigger": "submit-message", "id": chat.id, "messages": list(chat.messages)}
        return body, Run(chat, message.id)

    def finished(self, message_id: str) -> None:
        """The reply to ``message_id`` is over: it will not be run again."""
        self._marks.pop(message_id, None)


def _parts(message: UserMessage) -> list[dict[str, Any]]:
    """A user message's UI parts: its context, its text, then an image attached as a ``file``
    part with a data URL and a text attached as a text part."""
    # The stream has no context field: each piece is a labelled text part before the
    # user's own, so any backend hands it to its model (a data part most would drop).
    parts = [{"type": "text", "text": item.as_text()} for item in message.context or ()]
    parts.append({"type": "text", "text": message.message})
    for attachment in message.attachments or ():
        if attachment.data is not None:
            parts.append(
                {
                    "type": "file",
                    "mediaType": attachment.mime,
                    "filename": attachment.name,
                    "url": attachment.data_url(),
                }
            )
        else:
            text = f"Attached {describe(attachment)}:\n{attachment.text}"
            parts.append({"type": "text", "text": text})
    return parts
