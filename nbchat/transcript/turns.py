"""Transcript lines -> turns: each user message with the reply recorded for it (pure).

Routing was decided once, by the client, when the session was recorded: every
``in`` line carries the ``reply_to`` the client resolved (acks included), and a
``client`` ``restart`` line voids what came before for its id. Turn building
follows those and nothing else; it never routes again, so a transcript replays
the conversation exactly as the widget showed it. A line without ``reply_to``
answers no turn (a connection-level message).

Older transcripts stored the client's restart notice as an ``in`` message of
type ``reply_restart``; it is honoured the same way.

Each turn is redacted as assembled (:func:`nbchat.redact.redact_turn`): a
secret split across token frames, which no single line holds whole, is caught
in the text the frames join into, so neither the turns nor any export made of
them holds it (a transcript recorded before the recorder redacted replies whole
is covered too).

One pass, constant work per line: linear in the transcript's length.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..attachments import describe
from ..protocol import CancelRequest, UnknownMessage, UserMessage
from ..redact import redact_turn
from ..reply import ReplyBuilder
from ..turn import Turn
from .format import TranscriptLine, attachments_digest, gc_paused

__all__ = ["build_turns"]

_LEGACY_RESTART = "reply_restart"
"""The type older nbchat versions recorded the client's restart notice under, as ``in``."""


@dataclass
class _Open:
    """A user message being answered, while the lines are read."""

    t: float
    user: str
    builder: ReplyBuilder
    times: list[float] = field(default_factory=list)
    attached: list[str] = field(default_factory=list)
    attached_digest: str = ""
    mentions: tuple[str, ...] = ()


def build_turns(lines: Iterable[TranscriptLine]) -> list[Turn]:
    """Each user message with its recorded reply, in the order the messages were sent.

    A message resent after a reconnect (same id) is one turn.
    """
    with gc_paused():
        turns: list[_Open] = []
        by_id: dict[str, _Open] = {}
        for line in lines:
            direction = line.dir
            if direction == "in":
                reply_to = line.data.get("reply_to")
                turn = by_id.get(reply_to) if isinstance(reply_to, str) else None
                if turn is None:
                    continue  # answers nothing recorded: not parsed at all
                message = line.message()
                if message is None or isinstance(message, UserMessage | CancelRequest):
                    continue
                if isinstance(message, UnknownMessage) and message.type == _LEGACY_RESTART:
                    _restart(turn)
                    continue
                turn.times.append(line.t)
                builder = turn.builder
                if builder.conversation_id is None and message.conversation_id is not None:
                    builder.conversation_id = message.conversation_id  # assigned by the server
                builder.feed(message)
            elif direction == "out":
                if line.data.get("type", "message") != "message":
                    continue  # a cancel ends a reply through the server's answer, not here
                sent = line.message()
                if not isinstance(sent, UserMessage):
                    continue
                if sent.id is not None and sent.id in by_id:
                    continue  # a resend after a reconnect: the server answers it once
                attached = [describe(attachment) for attachment in sent.attachments or ()]
                builder = ReplyBuilder(sent.id, sent.conversation_id)
                turn = _Open(
                    line.t,
                    sent.message,
                    builder,
                    attached=attached,
                    attached_digest=attachments_digest(sent.attachments or ()),
                    mentions=sent.mentions,
                )
                turns.append(turn)
                if sent.id is not None:
                    by_id[sent.id] = turn
            elif direction == "client" and line.data.get("event") == "restart":
                reply_to = line.data.get("reply_to")
                turn = by_id.get(reply_to) if isinstance(reply_to, str) else None
                if turn is not None:
                    _restart(turn)
        return [_frozen(turn) for turn in turns]


def _restart(turn: _Open) -> None:
    """The server lost this reply and generates it afresh: what came before is void."""
    old = turn.builder
    turn.builder = ReplyBuilder(old.message_id, old.conversation_id)
    turn.times.clear()


def _frozen(turn: _Open) -> Turn:
    reply = turn.builder.build()
    return redact_turn(
        Turn(
            user=turn.user,
            message_id=reply.message_id,
            conversation_id=reply.conversation_id,
            assistant=reply.text,
            tool_calls=reply.tool_calls,
            messages=reply.messages,
            error=reply.error,
            complete=turn.builder.done,
            cancelled=reply.cancelled,
            t=turn.t,
            times=turn.times,
            reasoning=reply.reasoning,
            usage=reply.usage,
            truncated=reply.truncated,
            attached=turn.attached,
            attached_digest=turn.attached_digest,
            mentions=turn.mentions,
        )
    )
