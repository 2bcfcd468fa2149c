"""What the bridge remembers of each conversation: the messages sent upstream, bounded.

Each conversation keeps its history (user, assistant and tool messages; the
system prompt is prepended to every request, never stored) for at most
``max_conversations`` conversations and ``max_per_client`` of one client's,
the least recently used forgotten first (the client's own first, so one
client cannot make the bridge forget others' conversations).
Past ``max_chars`` characters the oldest turns are dropped, whole (a user
message and all that answered it), never the latest one. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...attachments import MAX_ATTACHMENTS, Attachment, describe
from ...protocol import ContextItem, ToolCall
from ..responder import Conversations

__all__ = ["Histories", "tool_images_message", "tool_round_messages", "user_message"]

Message = dict[str, Any]


class Histories:
    """The histories of every conversation, bounded in number and in characters each."""

    def __init__(self, max_conversations: int, max_chars: int, max_per_client: int = 100) -> None:
        self.max_chars = max_chars
        self._histories: Conversations[list[Message]] = Conversations(
            max_conversations, max_per_client
        )

    @property
    def max_conversations(self) -> int:
        """Conversations remembered in all."""
        return self._histories.total

    @max_conversations.setter
    def max_conversations(self, value: int) -> None:
        self._histories.total = value

    def messages(
        self, conversation_id: str, system: str | None, turn: list[Message]
    ) -> list[Message]:
        """What one request sends: the system prompt, the history, then the turn so far."""
        prompt = [{"role": "system", "content": system}] if system else []
        return [*prompt, *(self._histories.get(conversation_id) or []), *turn]

    def copy(self, conversation_id: str) -> list[Message]:
        """A copy of a conversation's messages (system prompt excluded)."""
        return [dict(message) for message in self._histories.get(conversation_id) or []]

    def commit(self, conversation_id: str, turn: list[Message]) -> None:
        """Append a finished (or cancelled) turn, then apply both bounds."""
        history = self._histories.get(conversation_id) or []
        history.extend(turn)
        self._histories.put(conversation_id, history)  # most recently used, then bounded
        # Drop whole turns (a user message and what answered it), oldest first, never
        # the last one: one pass over the history.
        size = sum(_size(message) for message in history)
        cut = 0
        for start, message in enumerate(history):
            if size <= self.max_chars:
                break
            if start > cut and message["role"] == "user":
                size -= sum(_size(dropped) for dropped in history[cut:start])
                cut = start
        del history[:cut]


def user_message(
    text: str, context: Iterable[ContextItem] = (), attachments: Iterable[Attachment] = ()
) -> Message:
    """The user's turn as the model reads it: one text part per piece of context, the text,
    then a part per attachment (an image as ``image_url`` with a data URL, a text as text).

    Context (``@df``: df's description) goes as parts of its own, labelled, so the
    model tells what the person wrote from what their notebook holds; plain text,
    as the client described it, never HTML (a table attached is CSV).
    """
    parts: list[dict[str, Any]] = [{"type": "text", "text": item.as_text()} for item in context]
    attached: list[dict[str, Any]] = []
    for attachment in attachments:
        if attachment.is_image:
            attached.append({"type": "image_url", "image_url": {"url": attachment.data_url()}})
        else:
            body = f"Attached {describe(attachment)}:\n{attachment.text}"
            attached.append({"type": "text", "text": body})
    if not parts and not attached:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}, *attached]}


def tool_round_messages(content: str, finished: Iterable[tuple[ToolCall, str]]) -> list[Message]:
    """A round that ended in tool calls, as the model is shown it next time.

    The assistant message naming each call, then one ``role: "tool"`` message
    per call with what the model is given (``finished``: each call and that text).
    """
    done = list(finished)
    assistant: Message = {
        "role": "assistant",
        # "" and never null: llama-cpp-python's server answers null with HTTP 500.
        "content": content,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments_text(call)},
            }
            for call, _ in done
        ],
    }
    return [assistant, *({"role": "tool", "tool_call_id": c.id, "content": t} for c, t in done)]


def tool_images_message(finished: Iterable[tuple[ToolCall, Sequence[Attachment]]]) -> list[Message]:
    """The images a round's tools showed, as one user message after its tool messages.

    A ``role: "tool"`` message holds text only (Chat Completions), so a model
    that reads images is shown them next, each after a line naming its call;
    at most :data:`MAX_ATTACHMENTS` in all, the rest counted. None shown: no message.
    """
    parts: list[dict[str, Any]] = []
    shown = left = 0
    for call, images in finished:
        for image in images:
            if shown == MAX_ATTACHMENTS:
                left += 1
                continue
            shown += 1
            line = f"{image.name}, shown by {call.name} (call {call.id}):"
            parts.append({"type": "text", "text": line})
            parts.append({"type": "image_url", "image_url": {"url": image.data_url()}})
    if not parts:
        return []
    if left:
        parts.append({"type": "text", "text": f"({left} more images not shown)"})
    return [{"role": "user", "content": parts}]


# Private helpers


def _arguments_text(call: ToolCall) -> str:
    arguments = call.arguments
    raw = arguments.get("_raw") if len(arguments) == 1 else None
    return raw if isinstance(raw, str) else json.dumps(arguments)


def _size(message: Mapping[str, Any]) -> int:
    content = message.get("content") or ""
    if isinstance(content, list):  # a user message with context: its text parts
        content = "".join(part.get("text", "") for part in content)
    calls = message.get("tool_calls") or ()
    return _content_size(content) + sum(len(c["function"]["arguments"]) for c in calls)


def _content_size(content: str | list[dict[str, Any]]) -> int:
    """Characters of a message's content: its text, or its parts' texts and image URLs."""
    if isinstance(content, str):
        return len(content)
    return sum(
        len(part.get("text") or part.get("image_url", {}).get("url", "")) for part in content
    )
