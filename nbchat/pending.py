"""A message whose reply is not complete yet, as the delivery session keeps it (pure).

Kept apart from :mod:`nbchat.session`'s logic so each stays small;
``nbchat.session`` re-exports :class:`Pending`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .protocol import CancelRequest, UserMessage
from .reply import ReplyBuilder

__all__ = ["Pending", "accepted", "builder_for", "cancel_one", "frame_of", "stopped_here"]

logger = logging.getLogger("nbchat.client")


@dataclass(eq=False, slots=True)  # slots: its fields are read on every frame
class Pending:
    """A user message accepted for delivery whose reply is not complete yet."""

    message: UserMessage
    frame: str
    builder: ReplyBuilder
    acked: bool = False
    seen: int = 0
    """Reply messages delivered so far (acks excluded)."""
    skip: int = 0
    """Messages a resumed reply repeats from its start, to drop."""
    cancelled: bool = False
    """A cancel is owed for this message: written again after a reconnect until the reply ends."""
    abandoned: bool = False
    """Nobody waits for the reply any more; kept only to recognise the rest of it."""
    size: int = 0
    """Bytes of the reply so far (token text as UTF-8, other messages as JSON)."""
    furthest: int = 0
    """The most reply messages any connection delivered: progress across resends."""
    stalls: int = 0
    """Resends in a row after which the reply got no further (see policy)."""
    order: int = 0
    """When it was accepted, among this session's messages: routing by age reads it."""
    plain: str | None = None
    """The frame without the message's ``context``, for a server that did not announce it
    (None: the message has no context)."""
    told: bool = False
    """Whether the log said its context was left out (once per message, not per resend)."""

    @property
    def id(self) -> str:
        """The message id (the session gives every message one)."""
        assert self.message.id is not None
        return self.message.id

    @property
    def conversation_id(self) -> str | None:
        """The conversation the message was sent in."""
        return self.message.conversation_id


def stopped_here(message_id: str) -> None:
    """Say, once per reply, that it was stopped only on this side."""
    logger.warning(
        "reply to %s stopped here; the server may still be generating "
        "(it did not announce cancel, so none was sent)",
        message_id,
    )


def frame_of(pending: Pending, context: bool) -> str:
    """The frame to write for ``pending``: with its context only if the server reads it."""
    if context or pending.plain is None:
        return pending.frame
    if pending.told:
        return pending.plain
    pending.told = True
    names = ", ".join(f"@{item.mention}" for item in pending.message.context or ())
    logger.warning(
        "the server did not announce context: the message goes without the description of %s",
        names or "its mentions",
    )
    return pending.plain


def accepted(pending: Pending) -> int:
    """When ``pending`` was accepted: the oldest is the smallest."""
    return pending.order


def builder_for(message: UserMessage) -> ReplyBuilder:
    """An empty reply to ``message``."""
    return ReplyBuilder(message_id=message.id, conversation_id=message.conversation_id)


def cancel_one(pending: Pending) -> CancelRequest:
    """The cancel naming ``pending`` alone."""
    return CancelRequest(conversation_id=pending.conversation_id, id=pending.id)
