"""Who owns what on the server, and the bounds on it: decisions only, no I/O.

This is the sans-I/O half of the server's sessions (``sessions.py`` is the
asyncio half that carries the decisions out), so every rule below is tested
synchronously, with time passed in as a number.

Everything is scoped to a :class:`Client`: the identity a connection presents
in the ``Nbchat-Client`` handshake header (a random secret that survives
reconnects), or, without that header, the connection itself. Message ids,
conversations (the responder is given an opaque key per client and
conversation), resume and cancel never cross from one client to another.

Every accepted message id gets a log (the ordered frames of its reply). The
registry holds the logs without looking into them: it is generic over the log
type and needs only a log's ids and its size in bytes (:class:`LogLike`). A
resent id gets its known log back (:class:`Accepted` with ``duplicate``), so
a reply is generated once and a reconnecting client can follow it again.

Bounds, so that no client can make the server grow or stall:

* bytes: every log (generating, finished, or waiting with its user's text)
  counts against its client's ``max_client_bytes`` and ``max_log_bytes`` over
  all clients; finished logs are forgotten to make room (least recently used
  first, the client's own first), past that a message is :class:`Refused` and
  a growing reply is to be cut (:meth:`Registry.grew`). Finished logs are also
  kept at most ``max_logs``;
* a client generates at most ``max_generations`` replies at once and has at
  most ``max_queued`` more waiting; one more message is :class:`Refused`;
* messages of one conversation start and end in the order they were sent,
  stopped ones too (:class:`Turn`);
* a client whose last connection closed keeps its replies going ``grace``
  seconds for a reconnect to resume (:meth:`Registry.expire`), an anonymous
  one not at all; at most ``max_departed`` clients wait so, and at most
  ``max_departed_per_source`` of one remote address: beyond, the one that
  left longest ago is forgotten early;
* a client has at most ``max_tool_calls`` client tool calls in progress and
  declares at most :data:`MAX_CLIENT_TOOLS` tools.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic

from ..protocol import ClientToolInfo, new_id
from .decisions import Accepted, L, Limits, LogLike, Refused, Turn

__all__ = [
    "MAX_CLIENT_TOOLS",
    "TOO_MANY_REPLIES",
    "Accepted",
    "Client",
    "Limits",
    "LogLike",
    "Refused",
    "Registry",
    "Turn",
]

MAX_CLIENT_TOOLS = 128
"""Tools kept of one client's declaration; the rest are ignored."""

TOO_MANY_REPLIES = "too_many_replies"
"""The ``error`` code answering a message beyond a client's ``max_generations + max_queued``."""


@dataclass(eq=False)
class Client(Generic[L]):
    """Everything the registry holds for one client identity (or one anonymous connection)."""

    identity: str | None = field(repr=False)
    """The secret the client presented; None for a connection without one. Never logged."""
    scope: str
    """The opaque prefix of the conversation keys given to the responder."""
    source: str | None = None
    """Where its last connection came from (the remote address), for the grace bounds."""
    held: int = 0
    """Bytes counted against ``max_client_bytes``: its logs, and the texts waiting."""
    counted: dict[L, int] = field(default_factory=dict)
    """The bytes counted for each of its logs (a waiting log counts its user's text)."""
    finished: OrderedDict[L, None] = field(default_factory=OrderedDict)
    """Its finished logs still kept, least recently used first."""
    logs: dict[str, L] = field(default_factory=dict)
    """Logs by the client's message id: unfinished ones, and finished ones not yet evicted."""
    conversations: dict[str | None, list[L]] = field(default_factory=dict)
    """The unfinished logs of each conversation, oldest first."""
    queue: list[L] = field(default_factory=list)
    """Logs waiting their turn, oldest first."""
    running: set[L] = field(default_factory=set)
    """Logs started and not yet ended."""
    stopped: set[L] = field(default_factory=set)
    """Logs stopped before they started, not yet ended."""
    unfinished: int = 0
    """Logs accepted and not yet ended: generating, waiting, or stopped."""
    connections: int = 0
    deadline: float | None = None
    """When a departed client is forgotten; None while connected."""
    forgotten: bool = False
    tools: dict[str, ClientToolInfo] = field(default_factory=dict)
    """The tools the client declared last (its ``tools`` message), by name."""
    calls: set[str] = field(default_factory=set)
    """Ids of the client tool calls in progress."""

    def responder_key(self, conversation_id: str | None) -> str:
        """The opaque conversation key given to the responder for this client."""
        return f"{self.scope}:{conversation_id or ''}"


class Registry(Generic[L]):
    """The clients of one server, their logs, and the bounds on them; each method a decision."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._clients: dict[str, Client[L]] = {}
        """Clients with an identity, connected or within their grace."""
        self._anonymous: set[Client[L]] = set()
        """Clients without an identity: one per open connection."""
        self._finished: OrderedDict[L, Client[L]] = OrderedDict()
        """Finished logs of every client, least recently used first."""
        self._departed: OrderedDict[Client[L], None] = OrderedDict()
        """Clients within their grace period, the one that left longest ago first."""
        self._held = 0
        """Bytes counted against ``max_log_bytes``."""
        self._key = secrets.token_bytes(32)
        """Keys responder scopes: an identity's scope is stable and reveals nothing of it."""

    def __repr__(self) -> str:
        return f"<Registry {self.client_count} clients {self.generation_count} unfinished>"

    # Counts

    @property
    def client_count(self) -> int:
        """How many client identities the server holds state for (connected, or within grace)."""
        return len(self._clients)

    @property
    def generation_count(self) -> int:
        """How many replies are being generated or waiting their turn, over all clients."""
        clients = [*self._clients.values(), *self._anonymous]
        return sum(client.unfinished for client in clients)

    @property
    def log_count(self) -> int:
        """How many finished reply logs are kept for dedupe and resume, over all clients."""
        return len(self._finished)

    @property
    def held_bytes(self) -> int:
        """Bytes of reply logs and waiting texts kept, over all clients (see ``max_log_bytes``)."""
        return self._held

    @property
    def departed_count(self) -> int:
        """How many clients are within their grace period."""
        return len(self._departed)

    @property
    def next_deadline(self) -> float | None:
        """The earliest time a departed client is due to be forgotten (see :meth:`expire`)."""
        return min((c.deadline for c in self._departed if c.deadline is not None), default=None)

    # Connections

    def attach(self, identity: str | None, source: str | None = None) -> Client[L]:
        """The client a new connection from ``source`` belongs to; no identity makes one."""
        if identity is None:
            client = self._new_client(None)
            self._anonymous.add(client)
        else:
            client = self._clients.get(identity) or self._new_client(identity)
            self._clients[identity] = client
        client.deadline = None  # back within the grace period: its replies go on
        self._departed.pop(client, None)
        client.source = source
        client.connections += 1
        return client

    def detach(self, client: Client[L], now: float) -> list[tuple[Client[L], list[L]]]:
        """A connection of ``client`` closed: the clients forgotten now, each with logs to cancel.

        ``client`` itself is forgotten at once without an identity or a grace
        period; a departed client beyond the grace bounds is forgotten early. A
        client forgotten has every unfinished log stopped: the generating ones
        returned, the waiting ones ending in their turn (:meth:`next_turn`).
        """
        client.connections -= 1
        if client.connections > 0:
            return []
        if client.identity is None or self.limits.grace <= 0:
            return [(client, self._forget(client))]
        client.deadline = now + self.limits.grace
        self._departed[client] = None
        same = [c for c in self._departed if c.source == client.source]
        early = same[: max(0, len(same) - self.limits.max_departed_per_source)]
        early += list(self._departed)[: max(0, len(self._departed) - self.limits.max_departed)]
        return [(c, self._forget(c)) for c in dict.fromkeys(early)]

    def expire(self, now: float) -> list[tuple[Client[L], list[L]]]:
        """Forget the departed clients whose grace has passed: each with the logs to cancel."""
        due = [c for c in self._departed if c.deadline is not None and c.deadline <= now]
        return [(client, self._forget(client)) for client in due]

    # Messages

    def accept(
        self,
        client: Client[L],
        message_id: str | None,
        conversation_id: str | None,
        new_log: Callable[[str, str | None], L],
        size: int = 0,
    ) -> Accepted[L] | Refused:
        """The log answering a message, known or made by ``new_log(message_id, conversation_id)``.

        ``size`` is the bytes kept with a new log while it waits (its user's
        text). A new log waits its turn: :meth:`next_turn` says when it may start.
        """
        if message_id is not None:
            known = client.logs.get(message_id)
            if known is not None:
                if known in self._finished:
                    self._finished.move_to_end(known)
                    client.finished.move_to_end(known)
                return Accepted(known, duplicate=True)
        limit = self.limits.max_generations + self.limits.max_queued
        if client.unfinished >= limit:
            return Refused(
                TOO_MANY_REPLIES,
                f"this client already has {limit} replies in progress, the server's limit: "
                "wait for them to finish or cancel some, then send again",
            )
        log = new_log(message_id or new_id(), conversation_id)
        self._count(client, log, size)
        if not self._make_room(client):
            text = self.full_text(client)
            self._release(client, log)
            return Refused(TOO_MANY_REPLIES, f"{text}: send again later")
        if message_id is not None:  # a server-assigned id can never be resent
            client.logs[message_id] = log
        client.conversations.setdefault(conversation_id, []).append(log)
        client.queue.append(log)
        client.unfinished += 1
        return Accepted(log, duplicate=False)

    def next_turn(self, client: Client[L]) -> Turn[L]:
        """The waiting logs whose turn has come: first in their conversation, and a free slot.

        A stopped log needs no slot. Ending a stopped log may give the next of
        its conversation its turn: ask again until a turn stops nothing.
        """
        turn: Turn[L] = Turn(start=[], stop=[])
        for log in list(client.queue):
            if client.conversations[log.conversation_id][0] is not log:
                continue
            if log in client.stopped:
                client.queue.remove(log)
                turn.stop.append(log)
            elif len(client.running) < self.limits.max_generations:
                client.queue.remove(log)
                client.running.add(log)
                turn.start.append(log)
            else:
                continue
            self._count(client, log, log.size)  # its text is handed on: no longer kept
        return turn

    def grew(self, client: Client[L], log: L) -> bool:
        """``log`` (generating) grew: False if it no longer fits the byte bounds, to be cut.

        Finished logs are forgotten first to make room.
        """
        self._count(client, log, log.size)
        return self._make_room(client)

    def ended(self, client: Client[L], log: L) -> None:
        """``log`` is finished (generated, failed, or stopped before or after it started)."""
        if log in client.queue:
            client.queue.remove(log)
        client.running.discard(log)
        client.stopped.discard(log)
        client.unfinished -= 1
        pending = client.conversations.get(log.conversation_id)
        if pending is not None and log in pending:
            pending.remove(log)
            if not pending:
                del client.conversations[log.conversation_id]
        if not client.forgotten and client.logs.get(log.message_id) is log:
            self._finished[log] = client
            client.finished[log] = None
            self._count(client, log, log.size)
            self._make_room(client)
            while len(self._finished) > self.limits.max_logs:
                oldest, owner = self._finished.popitem(last=False)
                self._drop(owner, oldest)
        else:
            self._release(client, log)

    def cancel(
        self, client: Client[L], conversation_id: str | None, message_id: str | None
    ) -> list[L]:
        """Stop a client's unfinished logs: one message's, or a conversation's.

        Returns the logs stopped; those generating are to be cancelled now, the
        others end in their turn (:meth:`next_turn`).
        """
        known = None if message_id is None else client.logs.get(message_id)
        if known is not None:  # named by its id: whatever conversation the cancel names
            logs = [] if known in self._finished else [known]
        else:
            pending = client.conversations.get(conversation_id, [])
            logs = [log for log in pending if message_id is None or log.message_id == message_id]
        return self._stop(client, logs)

    def close(self) -> list[tuple[Client[L], list[L]]]:
        """Forget every client (the server is closing): each with the logs generating, to cancel.

        Its waiting logs end in their turn (:meth:`next_turn`), as cancelled.
        """
        clients = [*self._clients.values(), *self._anonymous]
        return [(client, self._forget(client)) for client in clients]

    # Client tools

    def declare_tools(self, client: Client[L], tools: list[ClientToolInfo]) -> None:
        """The client's tools are now ``tools`` (the first :data:`MAX_CLIENT_TOOLS`)."""
        client.tools = {tool.name: tool for tool in tools[:MAX_CLIENT_TOOLS]}

    def begin_call(self, client: Client[L], name: str, call_id: str) -> str | None:
        """Start a client tool call, or say in one line why it is refused."""
        if name not in client.tools:
            known = ", ".join(sorted(client.tools)) or "none"
            return f"unknown client tool {name!r} (this client offers: {known})"
        if call_id in client.calls:
            return f"a client tool call with id {call_id!r} is already in progress"
        if len(client.calls) >= self.limits.max_tool_calls:
            return (
                f"this client already runs {self.limits.max_tool_calls} tool calls, "
                "the server's limit: wait for one to finish"
            )
        client.calls.add(call_id)
        return None

    def end_call(self, client: Client[L], call_id: str) -> None:
        """A client tool call begun with :meth:`begin_call` is over."""
        client.calls.discard(call_id)

    # Private methods

    def _new_client(self, identity: str | None) -> Client[L]:
        secret = new_id() if identity is None else identity
        scope = hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()[:24]
        return Client(identity=identity, scope=scope)

    def _stop(self, client: Client[L], logs: list[L]) -> list[L]:
        """Mark the waiting ones of ``logs`` stopped; all of them, unfinished, returned."""
        for log in logs:
            if log not in client.running:
                client.stopped.add(log)
        return logs

    def _forget(self, client: Client[L]) -> list[L]:
        """Drop a departed client and its finished logs; its generating logs, to cancel."""
        client.deadline = None
        client.forgotten = True
        self._departed.pop(client, None)
        if client.identity is not None and self._clients.get(client.identity) is client:
            del self._clients[client.identity]
        self._anonymous.discard(client)
        for log in list(client.finished):
            del self._finished[log]
            self._drop(client, log)
        client.logs.clear()
        self._stop(client, list(client.queue))
        return list(client.running)

    def _count(self, client: Client[L], log: L, size: int) -> None:
        """Count ``size`` bytes for ``log`` from now on (instead of what was counted)."""
        change = size - client.counted.get(log, 0)
        client.counted[log] = size
        client.held += change
        self._held += change

    def _release(self, client: Client[L], log: L) -> None:
        """Count nothing more for ``log``: it is no longer kept."""
        released = client.counted.pop(log, 0)
        client.held -= released
        self._held -= released

    def _drop(self, client: Client[L], log: L) -> None:
        """Forget a finished log, already out of :attr:`_finished`."""
        client.finished.pop(log, None)
        if client.logs.get(log.message_id) is log:
            del client.logs[log.message_id]
        self._release(client, log)

    def _make_room(self, client: Client[L]) -> bool:
        """Forget finished logs, least recently used first, until the bytes fit; whether they do."""
        limits = self.limits
        while client.held > limits.max_client_bytes and client.finished:
            log, _ = client.finished.popitem(last=False)
            del self._finished[log]
            self._drop(client, log)
        while self._held > limits.max_log_bytes and self._finished:
            oldest, owner = self._finished.popitem(last=False)
            self._drop(owner, oldest)
        return client.held <= limits.max_client_bytes and self._held <= limits.max_log_bytes

    def full_text(self, client: Client[L]) -> str:
        """Why a reply was cut or a message refused for room, in one line."""
        if client.held > self.limits.max_client_bytes:
            return f"this client's replies passed {self.limits.max_client_bytes} bytes, the limit"
        return f"the server's replies passed {self.limits.max_log_bytes} bytes, its limit"
