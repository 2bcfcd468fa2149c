"""The contract between the server and whatever writes replies: a :class:`Responder`.

The server owns delivery (acks, dedupe, resume, cancel, ordering, limits); a
responder only turns one user message into a stream of reply messages. The
demo agent, the transcript replay and a bridge to a model all implement it, and
the server imports none of them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from ..attachments import Attachment
from ..protocol import (
    ClientToolInfo,
    ContextItem,
    DoneMessage,
    ErrorMessage,
    ReasoningMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    new_id,
)

__all__ = [
    "ClientTools",
    "Conversations",
    "Responder",
    "ResponderMessage",
    "attachments_var",
    "client_of",
    "current_attachments",
    "current_client_tools",
    "current_context",
]

ResponderMessage: TypeAlias = (
    TokenMessage
    | ReasoningMessage
    | ToolCallMessage
    | ToolResultMessage
    | DoneMessage
    | ErrorMessage
)
"""What a responder yields; the server addresses each one and appends ``done``.

A responder may end with its own ``done`` (carrying ``usage``, ``truncated``): it is the
reply's last message, sent instead of the server's."""


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
        users: compare it, hash it, use it as a dictionary key. The part before
        its first ``:`` names the client (:func:`client_of`), so a responder can
        bound its memory per client (:class:`Conversations`).
        """
        ...


def client_of(conversation_key: str) -> str:
    """The client part of a conversation key the server gave a responder (opaque too)."""
    return conversation_key.partition(":")[0]


T = TypeVar("T")


class Conversations(Generic[T]):
    """A responder's memory per conversation: at most ``per_client`` of one client's, at
    most ``total`` in all, least recently used forgotten first (the client's own first).

    One client making conversations without end forgets only its own: another's
    memory goes only to many clients at once, which the server bounds.
    """

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._clients: OrderedDict[str, OrderedDict[str, T]] = OrderedDict()
        """Each client's conversations, least recently used first, the clients so too."""
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def get(self, key: str) -> T | None:
        """What is remembered of a conversation, without counting it as a use."""
        own = self._clients.get(client_of(key))
        return None if own is None else own.get(key)

    def put(self, key: str, value: T) -> None:
        """Remember ``value`` for a conversation, now its client's most recent, then bound."""
        client = client_of(key)
        own = self._clients.pop(client, None) or OrderedDict()
        self._clients[client] = own
        self._count += key not in own
        own[key] = value
        own.move_to_end(key)
        while len(own) > self.per_client:
            own.popitem(last=False)
            self._count -= 1
        while self._count > self.total:
            oldest = next(iter(self._clients.values()))
            oldest.popitem(last=False)
            self._count -= 1
            if not oldest:
                self._clients.popitem(last=False)


class ClientTools:
    """The tools of the client a reply is for: what a responder may call in the client.

    Inside :meth:`Responder.respond`, :func:`current_client_tools` returns the one of
    the client being answered; elsewhere (and for a client that declared none)
    this empty one, whose calls all end in ``error``. A responder shows a call
    as cards like any tool: a ``tool_call`` with the call's id and
    ``runs_in="client"`` before :meth:`call`, then the returned call in a
    ``tool_result``.
    """

    @property
    def available(self) -> Mapping[str, ClientToolInfo]:
        """The client's tools by name, as it last declared them."""
        return {}

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, call_id: str | None = None
    ) -> ToolCall:
        """Run a client tool and wait for it: the call with ``status`` done or error.

        ``call_id`` (default: a fresh one) must be unique among the client's
        calls; the client runs it at most once. Cancelling the reply cancels
        the wait; a client that left fails it after the server's grace period.
        """
        return ToolCall(
            id=call_id or new_id(),
            name=name,
            arguments=dict(arguments or {}),
            status="error",
            result=f"unknown client tool {name!r}: this client offers no tools",
            runs_in="client",
        )

    def images(self, call_id: str) -> tuple[Attachment, ...]:
        """The images the result of call ``call_id`` showed (a figure), each given once: for
        a model that reads images, beside the result's text, which describes them."""
        return ()


NO_CLIENT_TOOLS = ClientTools()

client_tools_var: ContextVar[ClientTools] = ContextVar(
    "nbchat_client_tools", default=NO_CLIENT_TOOLS
)
"""Set by the server for each reply it generates (the generation's own context)."""


def current_client_tools() -> ClientTools:
    """The tools of the client whose message is being answered (none outside a reply)."""
    return client_tools_var.get()


attachments_var: ContextVar[tuple[Attachment, ...]] = ContextVar("nbchat_attachments", default=())
"""Set by the server for each reply it generates, beside :data:`client_tools_var`."""


def current_attachments() -> tuple[Attachment, ...]:
    """What the user attached to the message being answered (none outside a reply).

    A context variable, like :func:`current_client_tools`, so a responder that
    reads only text keeps its ``respond(conversation_id, text)``.
    """
    return attachments_var.get()


context_var: ContextVar[tuple[ContextItem, ...]] = ContextVar("nbchat_context", default=())
"""Set by the server for each reply it generates, from the user message's ``context``."""


def current_context() -> tuple[ContextItem, ...]:
    """What the message being answered carries besides its text (``@df``: df's description).

    Empty outside a reply and for a message without context; a responder that reads it gives
    it to its model as context, never as the user's words.
    """
    return context_var.get()
