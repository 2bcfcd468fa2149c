"""What a replay knows of a transcript: each recorded exchange, by conversation, found by text.

Pure: the transcript's turns become exchanges (a user message, the messages
of its answer with their pace, acks and ``done`` left out), compared in one
normalised form (redacted, NFC, whitespace collapsed) so a notebook whose
secret was redacted when recorded still finds its answer. The replay server
(``replay.py``) serves them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import TypeAlias

from ..protocol import (
    DoneMessage,
    ErrorMessage,
    ReasoningMessage,
    TokenMessage,
    ToolCallMessage,
    ToolResultMessage,
    UnknownMessage,
)
from ..redact import redact_text
from ..turn import Turn
from .responder import ResponderMessage

__all__ = ["Cursor", "Exchange", "Key", "Recorded", "exchange", "key_of", "normalize"]

_REPLAYED = (TokenMessage, ReasoningMessage, ToolCallMessage, ToolResultMessage, ErrorMessage)


Key: TypeAlias = tuple[str, str]
r"""What a message is matched on: its :func:`normalize`\ d text and its attachments' digest."""


def normalize(text: str) -> str:
    """The form messages are compared in: redacted, NFC, whitespace collapsed, ends stripped."""
    return " ".join(unicodedata.normalize("NFC", redact_text(text)).split())


def key_of(text: str, attached_digest: str = "") -> Key:
    """A message's :data:`Key`: its text, and what it attached
    (:func:`~nbchat.transcript.format.attachments_digest`: names, types and texts, never
    an image's bytes)."""
    return normalize(text), attached_digest


@dataclass(frozen=True)
class Exchange:
    """One recorded user message and its answer, ready to replay."""

    order: int
    """Position in the whole transcript, for the "said it first" tie-break."""
    text: str
    messages: tuple[ResponderMessage, ...]
    offsets: tuple[float, ...]
    """Seconds after the user message at which each message arrived (non-decreasing)."""
    end: float
    """Seconds after the user message at which the reply ended."""
    attached: tuple[str, ...] = ()
    """What the recorded message attached, a line each, for an error naming it."""


@dataclass(eq=False)
class Recorded:
    """A recorded conversation: its exchanges in order, indexed by normalised text."""

    conversation_id: str
    exchanges: list[Exchange] = field(default_factory=list)
    by_text: dict[Key, list[int]] = field(default_factory=dict)
    followers: int = 0
    """How many live conversations have a cursor on it."""


@dataclass(eq=False)
class Cursor:
    """Where one live conversation is in one recorded conversation."""

    recorded: Recorded
    used: set[int] = field(default_factory=set)

    def find(self, key: Key) -> int | None:
        """The first unused exchange with this text, or None."""
        for index in self.recorded.by_text.get(key, ()):
            if index not in self.used:
                return index
        return None

    def next_text(self) -> str | None:
        """The text of the first unused exchange, or None when all are used."""
        for index, exchange in enumerate(self.recorded.exchanges):
            if index not in self.used:
                return exchange.text
        return None


def exchange(order: int, turn: Turn) -> Exchange:
    """A turn without acks and ``done``, each message timed from the user message."""
    messages: list[ResponderMessage] = []
    times: list[float] = []
    end = turn.t
    arrived = turn.times
    if len(arrived) != len(turn.messages):  # a Turn built by hand: no pace to keep
        arrived = [turn.t] * len(turn.messages)
    for message, t in zip(turn.messages, arrived, strict=True):
        end = max(end, t)
        if isinstance(message, UnknownMessage) and message.type == "reply_restart":
            messages.clear()
            times.clear()
        elif isinstance(message, _REPLAYED) or (isinstance(message, DoneMessage) and message.says):
            messages.append(message.model_copy(update={"reply_to": None, "conversation_id": None}))
            times.append(t)
        if isinstance(message, DoneMessage):  # kept above when it says what the reply cost
            break  # anything after the end belongs to no reply
    offsets: list[float] = []
    last = 0.0
    for t in times:
        last = max(last, t - turn.t)  # clocks step back; a reply never does
        offsets.append(last)
    return Exchange(
        order,
        turn.user,
        tuple(messages),
        tuple(offsets),
        max(last, end - turn.t),
        tuple(turn.attached),
    )
