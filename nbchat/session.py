"""The delivery session: what to send, and which message each server message answers (sans-I/O).

After websockets' ``protocol.py``: no asyncio, no sockets, no clock. The shell
(:class:`~nbchat.client.ChatClient`) feeds it what happens (a message accepted,
a connection opened or lost, a server message parsed) and carries out what it
says: frames to write, in order, and :data:`Outcome` values to hand to
listeners and waiters. Everything the protocol promises about delivery
(docs/protocol.md, "Delivery") is decided here, once:

- a message accepted stays pending until its reply is complete, failed, or
  abandoned by the caller; pending messages are bounded by ``max_pending``;
- on every open, each pending message is written again first, with the same
  id, followed by the cancels still owed; a frame leaves the outbox only once
  the shell says it was written;
- which pending message a server message answers: the server's ``reply_to``
  when it names one, an ack's ``id``, else the oldest pending message of its
  conversation (servers written for the TypeScript client answer in order).
  The answer is handed over in the message itself: every server message leaves
  the session with ``reply_to`` set to the id it answers, or None. No other
  layer routes again;
- what a server message is to the reply it answers: an ack (:class:`Acked`),
  or a part of the reply (:class:`ReplyPart`, handed over with the reply as
  assembled so far, so that no listener assembles it again);
- a resent message acked ``duplicate`` resumes: the server replays the reply
  from its start and the session drops what it had already delivered; acked
  without ``duplicate`` after a resend, the server lost it: the reply restarts;
- bounds: a reply past ``max_reply_bytes`` fails and is abandoned; an
  abandoned reply is freed at once and the rest of it is handed on bare, never
  assembled; a message resent :data:`~nbchat.policy.MAX_STALLED_RESENDS` times
  in a row without its reply getting further fails instead of being resent.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from .exceptions import ConnectionFailed, NbchatError, ProtocolError, QueueFull
from .outcomes import (
    NOTICES,
    Acked,
    Completed,
    Failed,
    Outcome,
    ReplyPart,
    Restarted,
    ToolRequested,
)
from .pending import Pending, accepted, builder_for, cancel_one, frame_of, stopped_here
from .policy import gives_up_resending
from .protocol import (
    AckMessage,
    CancelRequest,
    DoneMessage,
    ErrorMessage,
    ServerMessage,
    TokenMessage,
    ToolAck,
    ToolControl,
    ToolRequest,
    UserMessage,
    dump,
    utf8,
)

__all__ = [
    "NOTICES",
    "Acked",
    "Completed",
    "Failed",
    "Outcome",
    "Pending",
    "ReplyPart",
    "Restarted",
    "Session",
    "ToolRequested",
]

MAX_UNACKED_RESULTS = 1000
"""Tool results kept for resending until the server acks them; the oldest go first beyond."""


@dataclass
class _Frame:
    text: str
    message_id: str | None
    """The user message it carries; None for a cancel."""


@dataclass
class Session:
    """Pending messages, the outbox and routing for one client, across its connections."""

    max_pending: int = 1000
    max_reply_bytes: int | None = None
    """A reply past this many bytes fails (and the server is asked to stop it); None: no bound."""
    pending: OrderedDict[str, Pending] = field(default_factory=OrderedDict)
    """Accepted messages without a complete reply, oldest first."""
    connected: bool = False
    _outbox: deque[_Frame] = field(default_factory=deque)
    _conversations: dict[str | None, OrderedDict[str, Pending]] = field(default_factory=dict)
    """Pending (and abandoned) messages by conversation, oldest first: routing is O(1)."""
    _abandoned: dict[str, Pending] = field(default_factory=dict)
    """Abandoned messages the server may still answer, until their reply ends or the next open."""
    tools_frame: str | None = None
    """The client's ``tools`` declaration, written first on every open of a server that
    supports client tools; None while the client never had tools."""
    client_tools: bool = False
    """Whether the server of the open connection supports client tools."""
    can_cancel: bool = False
    """Whether the server of the last connection announced ``cancel``: else nothing is
    asked of it, and Stop or a caller giving up stops the reply here."""
    context: bool = False
    """Whether the open connection's server announced ``context`` (else: the text alone)."""
    _accepted: int = 0
    _results: OrderedDict[str, str] = field(default_factory=OrderedDict)
    """``tool_response`` frames by call id, until the server acks them (bounded)."""
    _reply_limit: float = field(init=False)
    """``max_reply_bytes`` as a number to compare with on every frame (infinite for None)."""

    def __post_init__(self) -> None:
        self._reply_limit = math.inf if self.max_reply_bytes is None else self.max_reply_bytes

    # Inputs: the caller

    def submit(self, message: UserMessage) -> tuple[Pending, bool]:
        """Accept ``message`` (which has an id); return its Pending and whether it is new.

        Raises :class:`QueueFull` when ``max_pending`` messages are pending:
        nothing is dropped to make room.
        """
        assert message.id is not None
        known = self.pending.get(message.id)
        if known is not None:
            return known, False
        if len(self.pending) >= self.max_pending:
            raise QueueFull(self.max_pending)
        self._accepted += 1
        plain = dump(message.model_copy(update={"context": None})) if message.context else None
        pending = Pending(
            message, dump(message), builder_for(message), order=self._accepted, plain=plain
        )
        self.pending[message.id] = pending
        self._conversations.setdefault(message.conversation_id, OrderedDict())[message.id] = pending
        # Unconnected, the frame is chosen again on open, for the server that then answers.
        self._outbox.append(
            _Frame(frame_of(pending, self.context or not self.connected), message.id)
        )
        return pending, True

    def cancel(self, conversation_id: str | None) -> tuple[CancelRequest | None, list[Outcome]]:
        """Stop the conversation's pending replies: the cancel owed, and what to hand on.

        To a server that announced ``cancel``, the cancel is written now if
        connected and again after every reconnect until those replies end, so
        a cancel lost with a connection still stops the reply it was meant
        for. To any other, nothing is sent: each reply ends here, ``done``
        with ``cancelled`` (see :func:`stop_here`). ``(None, [])``: nothing
        was pending.
        """
        targets = self._conversations.get(conversation_id)
        if not targets:
            return None, []
        if not self.can_cancel:
            return None, self._stop_here([p for p in targets.values() if not p.abandoned])
        for pending in targets.values():
            pending.cancelled = True
        request = CancelRequest(conversation_id=conversation_id)
        if self.connected:
            self._outbox.append(_Frame(dump(request), None))
        return request, []

    def abandon(self, message_id: str, error: NbchatError) -> list[Outcome]:
        """The caller gave up on a reply (timeout, task cancelled): stop waiting, tell the server.

        The message is never resent. If it may have reached the server, a
        cancel naming it is owed (servers that read ``id`` on a cancel stop
        only that reply), and what still arrives for it is handed on, as
        answering it, until its reply ends, so that it is never taken for the
        answer to the next message.
        """
        pending = self.pending.pop(message_id, None)
        if pending is None:
            return []
        pending.builder = builder_for(pending.message)  # what was assembled is freed at once
        unwritten = any(frame.message_id == message_id for frame in self._outbox)
        if unwritten:
            self._outbox = deque(f for f in self._outbox if f.message_id != message_id)
            self._unqueue(pending)
        else:
            pending.abandoned = True
            self._abandoned[message_id] = pending
            if not self.connected:
                pending.cancelled = True  # asked of the next server, if it announces cancel
            elif self.can_cancel:
                self._outbox.append(_Frame(dump(cancel_one(pending)), None))
            else:
                stopped_here(pending.id)
        return [Failed(message_id, error)]

    def fail_all(self, error: NbchatError) -> list[Outcome]:
        """The client stops for good: each pending reply fails with ``error``."""
        failed: list[Outcome] = [Failed(message_id, error) for message_id in self.pending]
        self.pending.clear()
        self._abandoned.clear()
        self._conversations.clear()
        self._outbox.clear()
        return failed

    def declare_tools(self, frame: str) -> None:
        """The client's tools changed: write the ``tools`` declaration now and on every open."""
        self.tools_frame = frame
        if self.connected and self.client_tools:
            self._outbox.append(_Frame(frame, None))

    def tool_result(self, call_id: str, frame: str) -> None:
        """A ``tool_response`` to write now, and again after every open until it is acked."""
        self._results.pop(call_id, None)
        self._results[call_id] = frame
        while len(self._results) > MAX_UNACKED_RESULTS:
            self._results.popitem(last=False)
        if self.connected and self.client_tools:
            self._outbox.append(_Frame(frame, None))

    @property
    def unacked_results(self) -> int:
        """Tool results the server has not acknowledged yet."""
        return len(self._results)

    # Inputs: the connection

    def opened(
        self, client_tools: bool = False, cancel: bool = False, context: bool = False
    ) -> int:
        """A connection opened: the tools first, pending messages next (same ids), then the
        cancels owed and the tool results not acked yet.

        ``client_tools``, ``cancel``, ``context``: the server announced that feature; what it
        did not announce is never written to it. Returns how many pending
        messages are written again.
        """
        self.connected = True
        self.client_tools = client_tools
        self.can_cancel = cancel
        self.context = context
        queued = {frame.message_id for frame in self._outbox if frame.message_id is not None}
        resend: list[_Frame] = []
        owed: dict[str | None, None] = {}
        for message_id, pending in self.pending.items():
            if message_id not in queued:
                pending.skip = pending.seen
                resend.append(_Frame(frame_of(pending, context), message_id))
            if pending.cancelled:
                owed[pending.conversation_id] = None
        # A cancel still in the outbox never reached the server that dropped: still owed.
        unsent = {frame.text for frame in self._outbox if frame.message_id is None}
        abandoned = [
            pending
            for pending in self._abandoned.values()
            if pending.cancelled or dump(cancel_one(pending)) in unsent
        ]
        for pending in self._abandoned.values():
            self._unqueue(pending)
        self._abandoned.clear()
        cancels: list[_Frame] = []
        if cancel:
            cancels = [_Frame(dump(CancelRequest(conversation_id=cid)), None) for cid in owed]
            cancels += [_Frame(dump(cancel_one(pending)), None) for pending in abandoned]
        else:
            for pending in abandoned:
                stopped_here(pending.id)
        # Cancels queued for the connection that dropped are among those owed, if still useful.
        fresh = [  # queued unconnected: with its context only if this server reads it
            _Frame(frame_of(self.pending[f.message_id], context), f.message_id)
            if f.message_id in self.pending
            else f
            for f in self._outbox
            if f.message_id is not None
        ]
        tools: list[_Frame] = []
        results: list[_Frame] = []
        if client_tools:
            if self.tools_frame is not None:
                tools.append(_Frame(self.tools_frame, None))
            results = [_Frame(frame, None) for frame in self._results.values()]
        self._outbox = deque(tools + resend + fresh + cancels + results)
        return len(resend)

    def closed(self) -> None:
        """The connection is gone; what was not written stays queued for the next."""
        self.connected = False

    # Inputs: the server

    def receive(self, message: ServerMessage | ToolControl) -> list[Outcome]:
        """Route one server message; return what to hand on, in order."""
        key = message.reply_to
        if type(message) is TokenMessage and key is not None:
            # The hot path, most frames: a token naming a pending message, not resumed.
            pending = self.pending.get(key)
            if pending is not None and not pending.skip:
                pending.seen += 1
                text = message.response
                pending.size += len(text) if text.isascii() else len(utf8(text))
                if pending.size > self._reply_limit:
                    return self._too_large(pending)
                builder = pending.builder
                builder.feed(message)  # a token never completes a reply
                return [ReplyPart(message, builder)]
        if isinstance(message, ToolAck):
            self._results.pop(message.id, None)
            return []
        if isinstance(message, ToolRequest):
            return self._requested(message)
        pending = self._answers(message)
        answer = pending.id if pending is not None else None
        if message.reply_to != answer:
            message = message.model_copy(update={"reply_to": answer})
        if isinstance(message, AckMessage):
            if pending is None or pending.abandoned:
                return [Acked(message)]
            furthest = max(pending.furthest, pending.seen)
            if pending.acked:  # acked again: a resend, so did the last connection get further?
                pending.stalls = pending.stalls + 1 if furthest <= pending.furthest else 0
            pending.furthest = furthest
            if gives_up_resending(pending.stalls):
                return [Acked(message), *self._stalled(pending)]
            restarted = pending.skip and not message.duplicate
            pending.acked = True
            if restarted:
                pending.skip = pending.seen = pending.size = 0
                pending.builder = builder_for(pending.message)
                return [Restarted(pending.id), Acked(message)]
            return [Acked(message)]
        if pending is None:
            return [message]
        if pending.skip:
            pending.skip -= 1
            return []  # delivered before the reconnect: the resumed reply repeats it
        if pending.abandoned:  # recognised as its own, never assembled: it costs nothing
            if isinstance(message, DoneMessage | ErrorMessage):
                self._unqueue(pending)
                self._abandoned.pop(pending.id, None)
            return [message]
        pending.seen += 1
        if self.max_reply_bytes is not None:
            pending.size += len(message.model_dump_json())
            if pending.size > self.max_reply_bytes:
                return self._too_large(pending)
        builder = pending.builder
        part = ReplyPart(message, builder)
        if not builder.feed(message):
            return [part]
        self._unqueue(pending)
        del self.pending[pending.id]
        return [part, Completed(pending.id, builder.build())]

    # Outputs

    def next_frame(self) -> str | None:
        """The next frame to write, or None; it stays first until :meth:`written`."""
        return self._outbox[0].text if self._outbox and self.connected else None

    def written(self) -> None:
        """The frame from :meth:`next_frame` went out."""
        self._outbox.popleft()

    @property
    def queued(self) -> int:
        """Frames waiting to be written."""
        return len(self._outbox)

    # Private methods

    def _too_large(self, pending: Pending) -> list[Outcome]:
        """The reply passed ``max_reply_bytes``: it fails, the server is asked to stop it."""
        limit = self.max_reply_bytes
        return self.abandon(
            pending.id,
            ProtocolError(
                f"the reply to {pending.id} passed max_reply_bytes ({limit} bytes) and was "
                "stopped: raise ClientConfig.max_reply_bytes if such replies are expected"
            ),
        )

    def _stalled(self, pending: Pending) -> list[Outcome]:
        """Resent again and again with no progress (a frame that kills each connection)."""
        return self.abandon(
            pending.id,
            ConnectionFailed(
                f"the reply to {pending.id} got no further in {pending.stalls} resends in a row "
                "(each connection ended at the same point): given up"
            ),
        )

    def _requested(self, request: ToolRequest) -> list[Outcome]:
        """A tool request is part of its reply's log: counted, and skipped when resumed."""
        key = (request.reply_to, request.id)
        pending = self._answers(request) if request.reply_to is not None else None
        if pending is not None and pending.skip:
            pending.skip -= 1
            return []  # delivered before the reconnect; an unacked result is resent on open
        if pending is not None:
            pending.seen += 1
        answer = None if pending is None or pending.abandoned else pending.id
        if request.reply_to != answer:
            request = request.model_copy(update={"reply_to": answer})
        return [ToolRequested(request, key)]

    def _answers(self, message: ServerMessage | ToolRequest) -> Pending | None:
        key = message.reply_to
        if key is None and isinstance(message, AckMessage):
            key = message.id
        if key is not None:
            return self.pending.get(key) or self._abandoned.get(key)
        if message.conversation_id is None:  # the oldest, of any conversation, stopped or not
            heads = (next(iter(queue.values())) for queue in self._conversations.values())
            return min(heads, key=accepted, default=None)
        queue = self._conversations.get(message.conversation_id)
        return next(iter(queue.values()), None) if queue else None

    def _stop_here(self, targets: list[Pending]) -> list[Outcome]:
        """End replies locally (a server without ``cancel``): kept to recognise their rest."""
        outcomes: list[Outcome] = []
        for pending in targets:
            done = DoneMessage(
                conversation_id=pending.conversation_id, reply_to=pending.id, cancelled=True
            )
            pending.builder.feed(done)
            outcomes += [
                ReplyPart(done, pending.builder),
                Completed(pending.id, pending.builder.build()),
            ]
            del self.pending[pending.id]
            if any(frame.message_id == pending.id for frame in self._outbox):
                self._outbox = deque(f for f in self._outbox if f.message_id != pending.id)
                self._unqueue(pending)  # never written: nothing of it will come
            else:
                pending.abandoned = True
                self._abandoned[pending.id] = pending
                stopped_here(pending.id)
        return outcomes

    def _unqueue(self, pending: Pending) -> None:
        queue = self._conversations.get(pending.conversation_id)
        if queue is not None:
            queue.pop(pending.id, None)
            if not queue:
                del self._conversations[pending.conversation_id]
