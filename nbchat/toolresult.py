"""A tool's return value as bounded JSON (pure): read at most a budget, then encode, then cut.

A result is read before it is encoded: strings and bytes are sliced, lists,
sets, mappings and any iterator (a generator, ``itertools.count()``) are read
element by element with :func:`itertools.islice`, dataclasses and pydantic
models field by field, numpy-like arrays only when small, each step charged to
one budget of characters (:data:`READ_FACTOR` times ``max_chars``). So an
endless iterator or a 1 GB string costs a few kilobytes and microseconds, never
the memory of its whole JSON. What is read is encoded by pydantic (dates,
enums, UUIDs, numpy scalars; anything else a bounded ``repr``) and, if its text
is still longer than ``max_chars``, cut to it. A cut result is a string that
says so.

The caller runs this off its event loop, with a time limit (the value's own
``__iter__``, ``__repr__`` or ``model_dump`` may be slow): :mod:`nbchat.tools`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import reprlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic import BaseModel

__all__ = ["MAX_RESULT_CHARS", "READ_FACTOR", "ToolResult", "serialize_result"]

MAX_RESULT_CHARS = 16_000
"""A result whose JSON text is longer is cut to this many characters, and says so."""

READ_FACTOR = 4
"""A result is read up to this many times ``max_chars`` of content; the rest is never read."""

_MAX_DEPTH = 32
"""Nesting deeper than this is shown as a bounded ``repr`` (a circular structure ends here)."""
_REPR = reprlib.Repr()
_REPR.maxstring = 200
_REPR.maxother = 200
_CONTAINERS = (Mapping, list, tuple, set, frozenset, deque, range, Iterator)


@dataclass(frozen=True)
class ToolResult:
    """A tool's return value made safe to send: JSON-able, bounded."""

    value: Any
    """JSON-able (dicts, lists, strings, numbers, booleans, None); the cut text if truncated."""
    text: str
    """The JSON text of ``value``, as a model is given it."""
    truncated: bool = False
    """True when the result was longer than the bound and was cut."""


def serialize_result(value: Any, *, max_chars: int = MAX_RESULT_CHARS) -> ToolResult:
    """A return value as bounded JSON: read within a budget, through pydantic, cut to size."""
    reader = _Reader(READ_FACTOR * max_chars)
    try:
        read = reader.read(value, 0)
        text = pydantic_core.to_json(read, fallback=_fallback, inf_nan_mode="null").decode()
    except (ValueError, TypeError, RecursionError, pydantic_core.PydanticSerializationError):
        text = json.dumps(_REPR.repr(value))  # a fallback that failed
    if not reader.cut and len(text) <= max_chars:
        return ToolResult(json.loads(text), text)
    if reader.cut:
        note = (
            f" ... [result cut: {max_chars} characters shown; it is longer than "
            f"{reader.limit} characters and was not read to its end]"
        )
    else:
        note = f" ... [result cut: {max_chars} of {len(text)} characters shown]"
    cut = text[:max_chars] + note
    return ToolResult(cut, json.dumps(cut), truncated=True)


class _Reader:
    """Reads a value into plain containers, charging every piece to one budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit
        self.cut = False
        """True once something was left unread."""
        self._path: set[int] = set()
        """The containers being read, by id: one met again is a cycle."""

    def read(self, value: Any, depth: int) -> Any:
        self.left -= 1  # every value costs at least its separator
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str | bytes | bytearray | memoryview):
            return self._text(value)
        if depth >= _MAX_DEPTH:
            return _REPR.repr(value)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="python")
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        if isinstance(value, _CONTAINERS):
            if id(value) in self._path:
                raise ValueError("a circular structure")  # shown as a bounded repr instead
            self._path.add(id(value))
            try:
                if isinstance(value, Mapping):
                    return self._mapping(value, depth)
                return self._items(iter(value), depth)
            finally:
                self._path.discard(id(value))
        if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
            return value.item()  # numpy scalar (or 0-d array)
        if callable(getattr(value, "tolist", None)) and hasattr(value, "shape"):
            size = getattr(value, "size", None)
            if isinstance(size, int) and size > self.left:
                self.cut = True
                return _REPR.repr(value)
            return self.read(value.tolist(), depth)  # numpy array
        return value  # dates, enums, UUIDs...: small, pydantic knows them; else _fallback

    def _text(self, value: str | bytes | bytearray | memoryview) -> Any:
        if len(value) > max(self.left, 0):
            self.cut = True
            value = value[: max(self.left, 0)]
        self.left -= len(value)
        return bytes(value) if isinstance(value, memoryview) else value

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        read: dict[Any, Any] = {}
        for key, item in value.items():
            if self.left <= 0:
                self.cut = True
                break
            key = key if isinstance(key, str | int | float | bool) or key is None else str(key)
            self.left -= len(key) if isinstance(key, str) else 1
            read[key] = self.read(item, depth + 1)
        return read

    def _items(self, items: Iterator[Any], depth: int) -> list[Any]:
        read: list[Any] = []
        for item in itertools.islice(items, max(self.left, 0)):
            read.append(self.read(item, depth + 1))
            if self.left <= 0:
                break
        else:
            if self.left > 0:
                return read
        if next(items, _END) is not _END:
            self.cut = True
        return read


_END = object()


def _fallback(value: Any) -> Any:
    """What pydantic does not know: a bounded repr."""
    return _REPR.repr(value)
