"""Who owns what on the server: clients, their conversations, their reply logs, and the bounds.

One mechanism gives both dedupe and resume: every accepted message id gets a
:class:`ReplyLog`, the ordered frames generated for it. Generation is a task
the server owns, writing into the log; a connection forwards a log to its
client by following it from the start. When a client resends an id after a
reconnect, the server acks it again with ``"duplicate": true`` and follows the
same log from the start: the reply is generated once, and the client gets all
of it.

Everything is scoped to a :class:`Client`: the identity a connection presents
in the ``Nbchat-Client`` handshake header (a random secret that survives
reconnects), or, without that header, the connection itself. Message ids,
conversations (the responder's memory included: it is given an opaque key per
client and conversation), resume and cancel never cross from one client to
another.

Bounds, so that no client can make the server grow or stall:

* a client generates at most ``max_generations`` replies at once and has at
  most ``max_queued`` more waiting their turn; one more message is answered
  with an ``error`` (``too_many_replies``) and not accepted;
* when a client's last connection closes, its unfinished replies keep going
  for ``grace`` seconds, so a reconnect resumes them; then they are cancelled
  and the client is forgotten. A connection without an identity cannot come
  back, so its replies are cancelled at once;
* finished logs are kept for dedupe and resume, least recently used evicted
  beyond ``max_logs`` logs or ``max_log_frames`` frames over all clients.

Messages of one conversation are answered in order: each generation waits for
the one before it. Cancelling ends each cancelled log with ``done`` and
``"cancelled": true``, so no reply is left open; every log ends with exactly
one ``done`` or ``error``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol import (
    ClientToolInfo,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    TokenMessage,
    ToolCall,
    ToolRequest,
    ToolResponse,
    dump,
    new_id,
)
from .responder import ClientTools, Responder, ResponderMessage, client_tools_var

__all__ = [
    "MAX_CLIENT_TOOLS",
    "TOO_MANY_REPLIES",
    "Client",
    "Limits",
    "Refused",
    "Registry",
    "ReplyLog",
]

MAX_CLIENT_TOOLS = 128
"""Tools kept of one client's declaration; the rest are ignored (and logged)."""

logger = logging.getLogger("nbchat.server")

TOO_MANY_REPLIES = "too_many_replies"
"""The ``error`` code answering a message beyond a client's ``max_generations + max_queued``."""


@dataclass(frozen=True)
class Limits:
    """The bounds a :class:`Registry` enforces (see the module docstring)."""

    max_logs: int
    max_log_frames: int
    max_generations: int
    max_queued: int
    grace: float
    max_tool_calls: int = 16
    """Client tool calls one client may have in progress; one more is an error result."""


class Refused(Exception):
    """A message the registry did not accept; ``code`` and the text go into an ``error``."""

    def __init__(self, code: str, text: str) -> None:
        self.code = code
        super().__init__(text)


class ReplyLog:
    """The frames generated for one client message, in order; followed by any connection.

    Frames are stored encoded (UTF-8 JSON), ready to be written as many times
    as connections follow the log, without serialising again.
    """

    def __init__(self, message_id: str, conversation_id: str | None) -> None:
        self.message_id = message_id
        self.conversation_id = conversation_id
        self.frames: list[bytes] = []
        """Encoded server messages; the last is ``done`` or ``error`` once finished."""
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        """The generation writing into this log."""
        self._changed = asyncio.Event()
        # A token frame is the only hot path: its address is encoded once per log.
        address = {"conversation_id": conversation_id, "reply_to": message_id}
        tail = json.dumps({k: v for k, v in address.items() if v is not None})
        self._token_tail = ("," + tail[1:]).encode()

    def __repr__(self) -> str:
        state = "finished" if self.finished else "open"
        return f"<ReplyLog {len(self.frames)} frames {state}>"

    def append(self, message: ResponderMessage | DoneMessage | ToolRequest) -> None:
        """Add a message, addressed to this log's conversation and message id."""
        if self.finished:
            raise RuntimeError("this reply log is already finished")
        if type(message) is TokenMessage and not message.model_extra:
            text = message.response
            if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
                quoted = b'"' + text.encode() + b'"'  # nothing to escape: json.dumps not needed
            else:
                # A lone surrogate cannot be UTF-8: it becomes "?" rather than a failed reply.
                quoted = json.dumps(text, ensure_ascii=False).encode("utf-8", "replace")
            frame = b'{"type":"token","response":' + quoted + self._token_tail
        else:
            message.conversation_id = self.conversation_id
            message.reply_to = self.message_id
            frame = _encode(message)
        self.frames.append(frame)
        self._changed.set()

    def finish(self, message: DoneMessage | ErrorMessage) -> None:
        """Add the last message: followers stop after it."""
        self.append(message)
        self.finished = True

    async def follow(self) -> AsyncIterator[list[bytes]]:
        """Every frame from the first, in batches of what is available, until finished."""
        index = 0
        while True:
            if index < len(self.frames):
                batch = self.frames[index:]
                index += len(batch)
                yield batch
            elif self.finished:
                return
            else:
                # No await between the length check and wait(): an append cannot slip in.
                self._changed.clear()
                await self._changed.wait()


def _encode(message: ResponderMessage | DoneMessage | ToolRequest) -> bytes:
    try:
        return dump(message).encode()
    except ValueError:  # a lone surrogate in a responder's text: pydantic cannot encode it
        text = json.dumps(message.model_dump(mode="python", exclude_none=True), ensure_ascii=False)
        return text.encode("utf-8", "replace")


@dataclass(eq=False)
class _Conversation:
    """The unfinished generations of one conversation of one client, oldest first."""

    pending: list[ReplyLog] = field(default_factory=list)
    tail: asyncio.Task[None] | None = None


@dataclass(eq=False)
class Client:
    """Everything the server holds for one client identity (or one anonymous connection)."""

    identity: str | None = field(repr=False)
    """The secret the client presented; None for a connection without one. Never logged."""
    scope: str
    """The opaque prefix of the conversation keys given to the responder."""
    slots: asyncio.Semaphore
    """One per reply that may be generated at once."""
    logs: dict[str, ReplyLog] = field(default_factory=dict)
    conversations: dict[str | None, _Conversation] = field(default_factory=dict)
    connections: int = 0
    unfinished: int = 0
    expiry: asyncio.TimerHandle | None = None
    tools: dict[str, ClientToolInfo] = field(default_factory=dict)
    """The tools the client declared last (its ``tools`` message), by name."""
    calls: dict[str, asyncio.Future[ToolResponse]] = field(default_factory=dict)
    """Client tool calls waiting for their ``tool_response``, by call id."""

    def responder_key(self, conversation_id: str | None) -> str:
        """The opaque conversation key given to the responder for this client."""
        return f"{self.scope}:{conversation_id or ''}"


class Registry:
    """The clients of one server, their logs and generations, and the bounds on them."""

    def __init__(self, responder: Responder, limits: Limits) -> None:
        self.responder = responder
        self.limits = limits
        self._clients: dict[str, Client] = {}
        self._finished: OrderedDict[ReplyLog, Client] = OrderedDict()
        """Finished logs of every client, least recently used first."""
        self._finished_frames = 0
        self._generations: set[asyncio.Task[None]] = set()
        self._key = secrets.token_bytes(32)
        """Keys responder scopes: an identity's scope is stable and reveals nothing of it."""

    # Public methods

    @property
    def client_count(self) -> int:
        """How many clients the server holds state for (connected, or within their grace)."""
        return len(self._clients)

    @property
    def generation_count(self) -> int:
        """How many replies are being generated or waiting their turn, over all clients."""
        return len(self._generations)

    @property
    def log_count(self) -> int:
        """How many finished reply logs are kept for dedupe and resume, over all clients."""
        return len(self._finished)

    def attach(self, identity: str | None) -> Client:
        """The client a new connection belongs to; ``None`` makes one for this connection."""
        if identity is None:
            client = self._new_client(None)
        else:
            client = self._clients.get(identity) or self._new_client(identity)
            self._clients[identity] = client
        if client.expiry is not None:
            client.expiry.cancel()  # back within the grace period: its replies go on
            client.expiry = None
        client.connections += 1
        return client

    def detach(self, client: Client) -> None:
        """A connection of ``client`` closed: forget the client now, or after the grace period."""
        client.connections -= 1
        if client.connections > 0:
            return
        if client.identity is None or self.limits.grace <= 0:
            self._forget(client)
        else:
            loop = asyncio.get_running_loop()
            client.expiry = loop.call_later(self.limits.grace, self._forget, client)

    def accept(
        self, client: Client, message_id: str | None, conversation_id: str | None, text: str
    ) -> tuple[ReplyLog, bool]:
        """The log answering a message, and whether it was already known (a resend).

        Raises :class:`Refused` when the client has too many replies unfinished.
        """
        if message_id is not None:
            known = client.logs.get(message_id)
            if known is not None:
                if known in self._finished:
                    self._finished.move_to_end(known)
                return known, True
        limit = self.limits.max_generations + self.limits.max_queued
        if client.unfinished >= limit:
            raise Refused(
                TOO_MANY_REPLIES,
                f"this client already has {limit} replies in progress, the server's limit: "
                "wait for them to finish or cancel some, then send again",
            )
        log = ReplyLog(message_id or new_id(), conversation_id)
        if message_id is not None:  # a server-assigned id can never be resent
            client.logs[message_id] = log
        conversation = client.conversations.setdefault(conversation_id, _Conversation())
        task = asyncio.get_running_loop().create_task(
            self._generate(client, log, text, conversation.tail)
        )
        log.task = task
        conversation.pending.append(log)
        conversation.tail = task
        client.unfinished += 1
        self._generations.add(task)
        task.add_done_callback(lambda done: self._generated(client, log, done))
        return log, False

    def declare_tools(self, client: Client, tools: list[ClientToolInfo]) -> None:
        """The client's tools are now ``tools`` (the first :data:`MAX_CLIENT_TOOLS`)."""
        if len(tools) > MAX_CLIENT_TOOLS:
            logger.warning(
                "a client declared %d tools: the first %d kept", len(tools), MAX_CLIENT_TOOLS
            )
        client.tools = {tool.name: tool for tool in tools[:MAX_CLIENT_TOOLS]}

    def tool_response(self, client: Client, response: ToolResponse) -> bool:
        """Hand a call's outcome to whoever waits; False if none does (answered or gone)."""
        future = client.calls.get(response.id)
        if future is None or future.done():
            return False
        future.set_result(response)
        return True

    def cancel(self, client: Client, conversation_id: str | None, message_id: str | None) -> int:
        """Cancel a client's unfinished replies: one message's, or a conversation's; how many."""
        known = None if message_id is None else client.logs.get(message_id)
        if known is not None:  # named by its id: whatever conversation the cancel names
            return 1 if known.task is not None and known.task.cancel() else 0
        conversation = client.conversations.get(conversation_id)
        if conversation is None:
            return 0
        count = 0
        for log in list(conversation.pending):
            if message_id is not None and log.message_id != message_id:
                continue
            if log.task is not None and log.task.cancel():
                count += 1
        return count

    async def close(self) -> None:
        """Cancel every generation and forget every client (the server is closing)."""
        for client in list(self._clients.values()):
            if client.expiry is not None:
                client.expiry.cancel()
        self._clients.clear()
        generations = list(self._generations)
        for task in generations:
            task.cancel()
        await asyncio.gather(*generations, return_exceptions=True)

    # Private methods

    def _new_client(self, identity: str | None) -> Client:
        secret = new_id() if identity is None else identity
        scope = hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()[:24]
        slots = asyncio.Semaphore(self.limits.max_generations)
        return Client(identity=identity, scope=scope, slots=slots)

    def _forget(self, client: Client) -> None:
        """Cancel a departed client's replies and drop its logs."""
        client.expiry = None
        if client.identity is not None and self._clients.get(client.identity) is client:
            del self._clients[client.identity]
        for log in client.logs.values():
            if log in self._finished:
                del self._finished[log]
                self._finished_frames -= len(log.frames)
        for conversation in client.conversations.values():
            for log in conversation.pending:
                if log.task is not None:
                    log.task.cancel()
        client.logs.clear()

    async def _generate(
        self, client: Client, log: ReplyLog, text: str, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # answer a conversation's messages in order
        async with client.slots:
            client_tools_var.set(_LiveClientTools(client, log, self.limits.max_tool_calls))
            stream = self.responder.respond(client.responder_key(log.conversation_id), text)
            try:
                async for message in stream:
                    if isinstance(message, ErrorMessage):
                        log.finish(message)
                        return
                    log.append(message)
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
        log.finish(DoneMessage())

    def _generated(self, client: Client, log: ReplyLog, task: asyncio.Task[None]) -> None:
        """Finish the log whatever happened: also runs for a task cancelled before it started."""
        self._generations.discard(task)
        client.unfinished -= 1
        if not log.finished:
            if task.cancelled():
                log.finish(DoneMessage(cancelled=True))
            else:
                error = task.exception()
                logger.error("generating a reply failed", exc_info=error)
                log.finish(
                    ErrorMessage(
                        error=ErrorInfo(
                            code="internal_error",
                            message=f"the server failed to answer ({type(error).__name__})",
                        )
                    )
                )
        conversation = client.conversations.get(log.conversation_id)
        if conversation is not None:
            conversation.pending.remove(log)
            if conversation.tail is task:
                del client.conversations[log.conversation_id]
        if client.logs.get(log.message_id) is log:
            self._finished[log] = client
            self._finished_frames += len(log.frames)
            self._evict()

    def _evict(self) -> None:
        """Forget the least recently used finished logs beyond the limits."""
        while self._finished and (
            len(self._finished) > self.limits.max_logs
            or self._finished_frames > self.limits.max_log_frames
        ):
            log, client = self._finished.popitem(last=False)
            self._finished_frames -= len(log.frames)
            if client.logs.get(log.message_id) is log:
                del client.logs[log.message_id]


class _LiveClientTools(ClientTools):
    """The tools of one client, for one reply: each call travels in that reply's log."""

    def __init__(self, client: Client, log: ReplyLog, max_calls: int) -> None:
        self._client = client
        self._log = log
        self._max_calls = max_calls

    @property
    def available(self) -> Mapping[str, ClientToolInfo]:
        return dict(self._client.tools)

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, call_id: str | None = None
    ) -> ToolCall:
        client = self._client
        call = ToolCall(
            id=call_id or new_id(), name=name, arguments=dict(arguments or {}), runs_in="client"
        )
        refusal = None
        if name not in client.tools:
            known = ", ".join(sorted(client.tools)) or "none"
            refusal = f"unknown client tool {name!r} (this client offers: {known})"
        elif call.id in client.calls:
            refusal = f"a client tool call with id {call.id!r} is already in progress"
        elif len(client.calls) >= self._max_calls:
            refusal = (
                f"this client already runs {self._max_calls} tool calls, the server's limit: "
                "wait for one to finish"
            )
        if refusal is not None:
            return call.model_copy(update={"status": "error", "result": refusal})
        future: asyncio.Future[ToolResponse] = asyncio.get_running_loop().create_future()
        client.calls[call.id] = future
        try:
            self._log.append(ToolRequest(id=call.id, name=name, arguments=call.arguments))
            response = await future
        finally:
            if client.calls.get(call.id) is future:
                del client.calls[call.id]
        return call.model_copy(update={"status": response.status, "result": response.result})
