"""The contract between the server and whatever writes replies: a :class:`Responder`.

The server owns delivery (acks, dedupe, resume, cancel, ordering, limits); a
responder only turns one user message into a stream of reply messages. The
demo agent, the transcript replay and a bridge to a model all implement it, and
the server imports none of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, TypeAlias

from ..protocol import ErrorMessage, TokenMessage, ToolCallMessage, ToolResultMessage

__all__ = ["Responder", "ResponderMessage"]

ResponderMessage: TypeAlias = TokenMessage | ToolCallMessage | ToolResultMessage | ErrorMessage
"""What a responder yields; the server addresses each one and appends ``done``."""


class Responder(Protocol):
    """What generates replies: the demo agent, a replay of a transcript, a model.

    The server fills in ``conversation_id`` and ``reply_to`` of every message
    yielded and appends ``done``. An :class:`ErrorMessage` ends the reply (clients
    treat ``error`` as the end of a reply), so nothing after it is read. A
    cancelled reply is a cancelled task: the responder sees
    :exc:`asyncio.CancelledError` at its current ``await`` and its generator is
    closed, so it should release what it holds in ``finally`` blocks. A responder
    that holds resources beyond a reply (connections to a model) may define an
    ``async def aclose()``: the server awaits it when it closes, on its own loop.
    """

    def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
        """Stream the reply to ``text`` in the conversation ``conversation_id``.

        ``conversation_id`` is an opaque key chosen by the server: one per
        conversation of one client, so two clients that pick the same
        conversation id never share a responder's memory. Never show it to
        users: compare it, hash it, use it as a dictionary key.
        """
        ...
