"""One exchange of a conversation: a user message and everything that answered it (pure).

The single turn type of nbchat. The widget's text fallbacks and ``%chat`` build
one from the reply the session assembled (:meth:`Turn.from_reply`), a transcript
builds one per recorded user message, and every exporter in :mod:`nbchat.render`
and the replay server read the same fields. A turn keeps its reply's messages
in arrival order, so an export can put each tool call where it happened:
before the text that followed it, as the panel shows it. How a turn ended is
worded here once (:data:`ENDING_NOTES`, :attr:`Turn.note`), and so is when an
empty reply still shows a bubble (:attr:`Turn.blank`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias

from .protocol import (
    ErrorInfo,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    Usage,
)

if TYPE_CHECKING:
    from .reply import Reply

__all__ = ["ENDING_NOTES", "TRUNCATED_NOTE", "Segment", "Turn", "TurnEnding"]

Segment: TypeAlias = "str | ToolCall"
"""A piece of a reply as shown: a run of Markdown text, or one tool call at its latest status."""

TurnEnding: TypeAlias = Literal["complete", "error", "cancelled", "incomplete"]
"""How a reply ended, as an export labels it."""

ENDING_NOTES: dict[TurnEnding, str] = {
    "cancelled": "stopped",
    "incomplete": "incomplete: the reply had not finished",
}
"""The line under a reply cut short, worded once for the live panel, the static copy and
every export (an error says why in its own banner; a complete reply needs no line)."""

TRUNCATED_NOTE = "cut at the token limit"
"""The line under a complete reply the model was cut short in (``Turn.truncated``)."""


@dataclass
class Turn:
    """One user message and the reply to it, complete or not."""

    user: str
    """What the user sent: untrusted, shown literally."""
    message_id: str | None = None
    """The id of the user message, which every server message of the reply names."""
    conversation_id: str | None = None
    """The conversation, as the user sent it or as the server assigned it."""
    assistant: str = ""
    """The reply's Markdown text, every token joined: untrusted."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Each tool call at its latest status, in the order they were announced."""
    messages: list[ServerMessage] = field(default_factory=list)
    """The reply's server messages in arrival order (what a replay sends again)."""
    error: ErrorInfo | None = None
    """Why the reply failed, when the server said so."""
    complete: bool = True
    """False while the reply is still coming, or when a transcript ends before it did."""
    cancelled: bool = False
    """The reply was stopped at the user's request."""
    t: float = 0.0
    """When the user message was sent, in seconds since the epoch (0 when unknown)."""
    times: list[float] = field(default_factory=list)
    """When each of ``messages`` arrived; aligned with it when known, else empty."""
    reasoning: str = ""
    """The model's reasoning ("thinking"), shown apart from the answer: untrusted."""
    usage: Usage | None = None
    """Tokens the reply cost, when the server said."""
    truncated: bool = False
    """The model was cut at its token limit (the reply is complete, its text is not)."""
    attached: list[str] = field(default_factory=list)
    """What the user attached, a line each (``plot.png (image/png, 12 KB)``): the content
    went to the model; the conversation shows what it was."""
    attached_digest: str = ""
    """What a replay matches the attachments on, read from a transcript; "" for none
    (:func:`nbchat.transcript.format.attachments_digest`)."""
    shown: dict[str, str] = field(default_factory=dict)
    """Rich results of the client's own tools as their cards show them, by call id
    (sanitized HTML from :mod:`nbchat.render.rich`): made in this kernel, shown in the
    panel and its saved copy, never sent or recorded (a transcript has what the model read)."""
    mentions: tuple[str, ...] = ()
    """The names the user's message carried as context (``@df``): chips in its bubble."""

    @classmethod
    def from_reply(
        cls,
        user: str,
        reply: Reply,
        *,
        complete: bool = True,
        messages: bool = True,
        attached: list[str] | None = None,
        mentions: tuple[str, ...] = (),
    ) -> Turn:
        """The turn of ``user``'s message answered by ``reply`` (as far as it has arrived).

        ``messages=False`` leaves the messages out: a reply keeps its tokens as
        text and makes a model of each only when asked, which a view deciding
        how the turn ended or copying its text does not need.
        """
        return cls(
            user=user,
            message_id=reply.message_id,
            conversation_id=reply.conversation_id,
            assistant=reply.text,
            tool_calls=list(reply.tool_calls),
            messages=reply.messages if messages else [],
            error=reply.error,
            complete=complete,
            cancelled=reply.cancelled,
            reasoning=reply.reasoning,
            usage=reply.usage,
            truncated=reply.truncated,
            attached=list(attached or ()),
            mentions=mentions,
        )

    @property
    def ending(self) -> TurnEnding:
        """How the reply ended: an error wins over cancelled, which wins over incomplete."""
        if self.error is not None:
            return "error"
        if self.cancelled:
            return "cancelled"
        return "complete" if self.complete else "incomplete"

    @property
    def note(self) -> str:
        """The line shown under the reply for how it ended (``""`` when it ended normally).

        A complete reply the model was cut short in says so (:data:`TRUNCATED_NOTE`).
        """
        ending = self.ending
        if ending == "complete" and self.truncated:
            return TRUNCATED_NOTE
        return ENDING_NOTES.get(ending, "")

    @property
    def blank(self) -> bool:
        """Whether the reply shows as one empty assistant bubble, the one rule for every view.

        A reply that ended with nothing to show (no text, no tool call, no
        error) still answers: an empty bubble says so, where a missing one
        would look like a reply still to come. A reply cut short before it
        ended shows its note instead.
        """
        return (
            self.complete
            and self.error is None
            and not self.assistant
            and not self.tool_calls
            and not self.reasoning
        )

    def segments(self) -> list[Segment]:
        """The reply as shown: text runs and tool calls in the order they arrived.

        A tool call takes the place of its first announcement, at its latest
        status. A turn built by hand (no ``messages``) shows its tool calls
        before its text, the usual order of a model that calls tools then answers.
        Linear in the number of messages.
        """
        if not self.messages:
            return [*self.tool_calls, *([self.assistant] if self.assistant else [])]
        latest = {call.id: call for call in self.tool_calls}
        placed: set[str] = set()
        segments: list[Segment] = []
        run: list[str] = []
        for message in self.messages:
            if type(message) is TokenMessage:
                run.append(message.response)
            elif isinstance(message, ToolCallMessage | ToolResultMessage):
                for call in message.tool_calls:
                    if call.id in placed:
                        continue
                    if run:
                        segments.append("".join(run))
                        run = []
                    placed.add(call.id)
                    segments.append(latest.get(call.id, call))
        if run:
            segments.append("".join(run))
        segments.extend(call for call in self.tool_calls if call.id not in placed)
        return [segment for segment in segments if not isinstance(segment, str) or segment]
