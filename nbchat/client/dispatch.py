"""Carrying out what the session decided: each outcome to the waiters, listeners and tools.

The session (:mod:`nbchat.session`) decides what a server message is (a part
of a reply, an ack, an unrouted message) and what happened to a reply; this
module only tells whoever waits or listens, in the order given. It is called
once per frame by the connection, so the common case (a part of a reply) is
tested first, by exact type.
"""

from __future__ import annotations

import logging

from ..exceptions import ServerError
from ..protocol import ErrorMessage, ServerMessage
from ..session import Acked, Completed, Failed, Outcome, ReplyPart, Restarted, ToolRequested
from .events import Emitter
from .tools import ToolRunner
from .waiters import Waiters

__all__ = ["Dispatcher"]

logger = logging.getLogger("nbchat.client")

_NOTICES = frozenset({Restarted, Completed, Failed, ToolRequested})


class Dispatcher:
    """Hands a client's outcomes to its waiters (``ask``, ``stream``), listeners and tools."""

    def __init__(self, waiters: Waiters, events: Emitter, tools: ToolRunner) -> None:
        self._waiters = waiters
        self._emit = events.emit
        self._listeners = events.listeners
        self._tools = tools

    def carry_out(self, outcomes: list[Outcome]) -> None:
        """Carry out ``outcomes`` in order (for the connection: once per frame)."""
        waiters, emit, listeners = self._waiters, self._emit, self._listeners
        for outcome in outcomes:
            kind = type(outcome)
            if kind is ReplyPart:  # the hot path: a message of a reply, most frames
                part: ReplyPart = outcome  # type: ignore[assignment]
                if waiters.streams:
                    waiters.received(part.message)
                if listeners["message"]:  # emitting to nobody is a call per frame saved
                    emit("message", part.message)
                if listeners["reply"]:
                    emit("reply", part.message, part.reply)
            elif kind is Acked:
                acked: Acked = outcome  # type: ignore[assignment]
                emit("message", acked.message)
            elif kind not in _NOTICES:
                # A message that answers no pending message (``reply_to`` is None).
                message: ServerMessage = outcome  # type: ignore[assignment]
                if message.reply_to is None and isinstance(message, ErrorMessage):
                    emit("error", ServerError(message.error.code, message.error.message))
                emit("message", message)
            elif isinstance(outcome, Completed):
                waiters.completed(outcome.message_id, outcome.reply)
            elif isinstance(outcome, Restarted):
                logger.info("reply to %s restarts: the server had lost it", outcome.message_id)
                waiters.restarted(outcome.message_id)
                emit("restart", outcome.message_id)
            elif isinstance(outcome, Failed):
                waiters.failed(outcome.message_id, outcome.error)
                emit("failed", outcome.message_id, outcome.error)
            elif isinstance(outcome, ToolRequested):
                self._tools.requested(outcome.request, outcome.key)
