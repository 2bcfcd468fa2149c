"""The asyncio shell of the server's sessions: it carries out the registry's decisions.

What is remembered for whom and the bounds on it are decided by the sans-I/O
:class:`~nbchat.server.registry.Registry`; this module only does what needs
an event loop: a task per reply being generated (writing into its
:class:`~nbchat.server.replylog.ReplyLog`), one timer for the clients within
their grace period, and the futures client tool calls wait on.

Stopping a reply ends its log with ``done`` and ``"cancelled": true``, whether
it was generating (its task is cancelled) or still waiting its turn (its log is
finished at once): no reply is left open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, TypeAlias

from ..attachments import Attachment
from ..protocol import (
    ClientToolInfo,
    ContextItem,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ToolCall,
    ToolRequest,
    ToolResponse,
    new_id,
)
from .registry import MAX_CLIENT_TOOLS, Accepted, Client, Limits, Refused, Registry
from .replylog import ReplyLog
from .responder import ClientTools, Responder, attachments_var, client_tools_var, context_var

__all__ = ["REPLY_TOO_LONG", "Sessions"]

logger = logging.getLogger("nbchat.server")

_Said: TypeAlias = tuple[str, list[ContextItem], tuple[Attachment, ...]]
"""A message waiting its turn: its text, context and attachments."""

REPLY_TOO_LONG = "reply_too_long"
"""The ``error`` code ending a reply cut at the registry's byte bounds."""


class Sessions:
    """Generates the replies the :attr:`registry` admits, and stops the ones it gives up."""

    def __init__(self, responder: Responder, limits: Limits) -> None:
        self.responder = responder
        self.registry: Registry[ReplyLog] = Registry(limits)
        """The decisions, and the counts for monitoring and tests."""
        self._tasks: dict[ReplyLog, asyncio.Task[None]] = {}
        """The replies being generated."""
        self._texts: dict[ReplyLog, _Said] = {}
        """The user's text, context and attachments of each reply waiting its turn."""
        self._calls: dict[tuple[Client[ReplyLog], str], asyncio.Future[ToolResponse]] = {}
        """Client tool calls waiting for their ``tool_response``, by client and call id."""
        self._timer: asyncio.TimerHandle | None = None

    # Public methods

    def attach(self, identity: str | None, source: str | None = None) -> Client[ReplyLog]:
        """The client a new connection from ``source`` belongs to (see :meth:`Registry.attach`)."""
        return self.registry.attach(identity, source)

    def detach(self, client: Client[ReplyLog]) -> None:
        """A connection of ``client`` closed: stop the replies of the clients forgotten now,
        or arm the grace timer."""
        for forgotten, logs in self.registry.detach(client, asyncio.get_running_loop().time()):
            self._stop(forgotten, logs)
        self._arm()

    def accept(
        self,
        client: Client[ReplyLog],
        message_id: str | None,
        conversation_id: str | None,
        text: str,
        context: list[ContextItem] | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> Accepted[ReplyLog] | Refused:
        """The log answering a message (its generation started or queued), or the refusal.

        ``context`` and ``attachments``: what the message carries besides its text (the
        ``context`` and ``attachments`` features), handed to the responder as
        :func:`~nbchat.server.responder.current_context` and ``current_attachments``.
        """
        # A waiting text counts by its characters: what a str of them holds, give or take;
        # its context by its characters too, its attachments by their bytes.
        size = len(text) + sum(len(item.value) + len(item.description) for item in context or ())
        size += sum(attachment.size for attachment in attachments)
        decision = self.registry.accept(client, message_id, conversation_id, ReplyLog, size)
        if isinstance(decision, Accepted) and not decision.duplicate:
            self._texts[decision.log] = (text, list(context or ()), attachments)
            self._start_ready(client)
        return decision

    def cancel(
        self, client: Client[ReplyLog], conversation_id: str | None, message_id: str | None
    ) -> int:
        """Stop a client's unfinished replies: one message's, or a conversation's; how many."""
        return self._stop(client, self.registry.cancel(client, conversation_id, message_id))

    def declare_tools(self, client: Client[ReplyLog], tools: list[ClientToolInfo]) -> None:
        """The client's tools are now ``tools`` (the first :data:`MAX_CLIENT_TOOLS`)."""
        if len(tools) > MAX_CLIENT_TOOLS:
            logger.warning(
                "a client declared %d tools: the first %d kept", len(tools), MAX_CLIENT_TOOLS
            )
        self.registry.declare_tools(client, tools)

    def tool_response(self, client: Client[ReplyLog], response: ToolResponse) -> bool:
        """Hand a call's outcome to whoever waits; False if none does (answered or gone)."""
        future = self._calls.get((client, response.id))
        if future is None or future.done():
            return False
        future.set_result(response)
        return True

    async def close(self) -> None:
        """Stop every reply and forget every client (the server is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for client, logs in self.registry.close():
            self._stop(client, logs)
        tasks = list(self._tasks.values())
        for task in tasks:  # a forgotten client's replies may still be ending
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Private methods

    def _start_ready(self, client: Client[ReplyLog]) -> None:
        """Carry out the client's next turns: start generations, end stopped logs in order."""
        while True:
            turn = self.registry.next_turn(client)
            for log in turn.start:
                self._start(client, log, self._texts.pop(log))
            for log in turn.stop:
                self._texts.pop(log, None)
                log.finish(DoneMessage(cancelled=True))
                self.registry.ended(client, log)
            if not turn.stop:
                return

    def _start(self, client: Client[ReplyLog], log: ReplyLog, said: _Said) -> None:
        task = asyncio.get_running_loop().create_task(self._generate(client, log, *said))
        self._tasks[log] = task
        task.add_done_callback(lambda done: self._generated(client, log, done))

    def _stop(self, client: Client[ReplyLog], logs: list[ReplyLog]) -> int:
        """Cancel the tasks of the stopped logs generating; how many logs were stopped.

        The stopped logs still waiting end in their turn, after the ones before them.
        """
        count = 0
        for log in logs:
            task = self._tasks.get(log)
            count += task.cancel() if task is not None else 1
        self._start_ready(client)
        return count

    def _arm(self) -> None:
        """One timer, for the earliest grace period to end."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.registry.next_deadline
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        for client, logs in self.registry.expire(asyncio.get_running_loop().time()):
            self._stop(client, logs)
        self._arm()  # a timer may fire a little early: the same deadline, armed again

    async def _generate(
        self,
        client: Client[ReplyLog],
        log: ReplyLog,
        text: str,
        context: list[ContextItem],
        attachments: tuple[Attachment, ...],
    ) -> None:
        client_tools_var.set(_LiveClientTools(self.registry, self._calls, client, log))
        context_var.set(tuple(context))
        attachments_var.set(attachments)
        stream = self.responder.respond(client.responder_key(log.conversation_id), text)
        registry = self.registry
        try:
            async for message in stream:
                if isinstance(message, ErrorMessage | DoneMessage):
                    log.finish(message)
                    return
                log.append(message)
                if not registry.grew(client, log):  # past the byte bounds: cut, in one line
                    text = f"{registry.full_text(client)}, so the server stopped this reply"
                    log.finish(ErrorMessage(error=ErrorInfo(code=REPLY_TOO_LONG, message=text)))
                    return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        log.finish(DoneMessage())

    def _generated(self, client: Client[ReplyLog], log: ReplyLog, task: asyncio.Task[None]) -> None:
        """Finish the log whatever happened: also runs for a task cancelled before it started."""
        del self._tasks[log]
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
        self.registry.ended(client, log)
        self._start_ready(client)


class _LiveClientTools(ClientTools):
    """The tools of one client, for one reply: each call travels in that reply's log."""

    def __init__(
        self,
        registry: Registry[ReplyLog],
        calls: dict[tuple[Client[ReplyLog], str], asyncio.Future[ToolResponse]],
        client: Client[ReplyLog],
        log: ReplyLog,
    ) -> None:
        self._registry = registry
        self._calls = calls
        self._client = client
        self._log = log
        self._images: dict[str, tuple[Attachment, ...]] = {}

    @property
    def available(self) -> Mapping[str, ClientToolInfo]:
        return dict(self._client.tools)

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, call_id: str | None = None
    ) -> ToolCall:
        client, registry, calls = self._client, self._registry, self._calls
        call = ToolCall(
            id=call_id or new_id(), name=name, arguments=dict(arguments or {}), runs_in="client"
        )
        refusal = registry.begin_call(client, name, call.id)
        if refusal is not None:
            return call.model_copy(update={"status": "error", "result": refusal})
        future: asyncio.Future[ToolResponse] = asyncio.get_running_loop().create_future()
        calls[client, call.id] = future
        try:
            self._log.append(ToolRequest(id=call.id, name=name, arguments=call.arguments))
            registry.grew(client, self._log)  # counted; a reply past the bounds is cut next
            response = await future
        finally:
            del calls[client, call.id]
            registry.end_call(client, call.id)
        if response.attachments:
            self._images[call.id] = tuple(response.attachments)
        return call.model_copy(update={"status": response.status, "result": response.result})

    def images(self, call_id: str) -> tuple[Attachment, ...]:
        return self._images.pop(call_id, ())
