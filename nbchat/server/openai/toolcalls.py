"""Tool calls rebuilt from a streamed completion's fragments (pure).

An OpenAI-compatible stream sends each tool call in pieces: ``delta.tool_calls``
entries carrying an ``index``, and some of an id, a name and argument text. This
module puts them back together, bounded, trusting nothing of their shape (the
model server's output is untrusted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from ...exceptions import ToolArgumentsError
from ...toolspec import MAX_ARGUMENT_CHARS, parse_arguments

__all__ = [
    "MAX_CALLS_PER_ROUND",
    "StreamedCall",
    "ToolCallAccumulator",
    "chunk_delta",
    "shown_arguments",
]

_T = TypeVar("_T")

MAX_CALLS_PER_ROUND = 32
"""Tool calls accepted from one completion; further ones are refused with an error result."""

_MAX_SHOWN_RAW = 1000
"""Undecodable arguments are shown on the card up to this many characters."""


@dataclass
class StreamedCall:
    """One tool call being streamed: its id, name and argument fragments."""

    id: str
    name: str = ""
    fragments: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


class ToolCallAccumulator:
    """Rebuilds whole tool calls from streamed ``delta.tool_calls`` fragments.

    Fragments are matched by ``index``; id, name and argument text arrive split
    across chunks. A fragment at a known index but with a *different* id starts
    a new call (Ollama sends every call at index 0, each with its own id).
    Argument text is kept up to :data:`~nbchat.toolspec.MAX_ARGUMENT_CHARS` per
    call (plus one character, so the excess is detected and refused).
    """

    def __init__(self) -> None:
        self.calls: list[StreamedCall] = []
        self._by_index: dict[int, StreamedCall] = {}

    def add(
        self, index: int | None, call_id: str | None, name: str | None, arguments: str | None
    ) -> None:
        """Take one fragment."""
        key = 0 if index is None else index
        call = self._by_index.get(key)
        if call is None or (call_id and call.id and call_id != call.id):
            if len(self.calls) > MAX_CALLS_PER_ROUND:
                return  # one call past the bound is kept, to be refused with an error result
            call = StreamedCall(id=call_id or "")
            self.calls.append(call)
            self._by_index[key] = call
        elif call_id and not call.id:
            call.id = call_id
        if name and not call.name:
            call.name = name
        if arguments and call.size <= MAX_ARGUMENT_CHARS:
            piece = arguments[: MAX_ARGUMENT_CHARS + 1 - call.size]
            call.fragments.append(piece)
            call.size += len(piece)

    def add_deltas(self, deltas: object) -> None:
        """Take the ``delta.tool_calls`` of one chunk, as decoded JSON; skip what is malformed."""
        if not isinstance(deltas, list):
            return
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            function = delta.get("function")
            if not isinstance(function, dict):
                function = {}
            self.add(
                _typed(delta.get("index"), int),
                _typed(delta.get("id"), str),
                _typed(function.get("name"), str),
                _typed(function.get("arguments"), str),
            )


def _typed(value: object, kind: type[_T]) -> _T | None:
    """``value`` if it has the expected JSON type (a model server's output is untrusted)."""
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def chunk_delta(chunk: object) -> dict[str, Any]:
    """``choices[0].delta`` of a decoded chunk, or ``{}`` when it has none (usage chunks)."""
    if not isinstance(chunk, dict):
        return {}
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return {}
    delta = choices[0].get("delta")
    return delta if isinstance(delta, dict) else {}


def shown_arguments(call: StreamedCall) -> dict[str, Any]:
    """The arguments as the card shows them: decoded when they are a JSON object."""
    try:
        return parse_arguments(call.arguments, call.name)
    except ToolArgumentsError:
        return {"_raw": call.arguments[:_MAX_SHOWN_RAW]}
