"""What the delivery session hands its shell: the notices and the :data:`Outcome` union (pure).

:class:`~nbchat.session.Session` decides; these values say what it decided, in
order, for the client to carry out (``nbchat/client/dispatch.py``). Kept apart
from the session's logic so each stays small; ``nbchat.session`` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import NbchatError
from .protocol import AckMessage, ServerMessage, ToolRequest
from .reply import Reply, ReplyBuilder

__all__ = [
    "NOTICES",
    "Acked",
    "Completed",
    "Failed",
    "Outcome",
    "ReplyPart",
    "Restarted",
    "ToolRequested",
]


@dataclass(slots=True)  # not frozen: made once per frame, and frozen's __init__ costs 3x
class ReplyPart:
    """``message`` is part of the reply to the pending message ``message.reply_to``.

    ``reply`` is that reply as the session assembled it so far, ``message``
    included: the session's own builder, live, for reading only (its
    ``done``, ``text``, ``tool_call(id)``, ``build()``). Views read it rather
    than assembling the reply again from messages.
    """

    message: ServerMessage
    reply: ReplyBuilder


@dataclass(frozen=True, slots=True)
class Acked:
    """The server acknowledged a user message (``message.reply_to``: which, or None).

    An ack is never part of a reply: listeners that follow replies never see
    it, and none of them has to look at a message's type to know.
    """

    message: AckMessage


@dataclass(frozen=True)
class Restarted:
    """The server had lost the reply to ``message_id`` and generates it afresh."""

    message_id: str


@dataclass(frozen=True)
class Completed:
    """The reply to ``message_id`` is complete (``done`` or ``error``)."""

    message_id: str
    reply: Reply


@dataclass(frozen=True)
class Failed:
    """The reply to ``message_id`` will never be complete, for ``error``'s reason."""

    message_id: str
    error: NbchatError


@dataclass(frozen=True)
class ToolRequested:
    """The server asks this client to run one of its tools.

    ``request.reply_to`` is the message whose reply the call belongs to, as
    routed here (None: no pending message of this client, so nothing awaits
    the call). ``key`` identifies the call across resends, for running it at
    most once.
    """

    request: ToolRequest
    key: tuple[str | None, str]


Outcome = ServerMessage | ReplyPart | Acked | Restarted | Completed | Failed | ToolRequested
"""What the shell carries out, in the order given. A server message that answers
no pending message is handed on as it is (``reply_to`` None); one that answers a
pending message comes as a :class:`ReplyPart` (with the reply so far) or an
:class:`Acked`; the others are notices. The part is one small slotted object per
frame, freed at once: the price of handing the reply over instead of having
every listener rebuild it."""

NOTICES = (ReplyPart, Acked, Restarted, Completed, Failed, ToolRequested)
"""The outcome types that are not bare server messages."""
