"""Who waits for which reply: ``ask()`` futures and ``stream()`` queues, by message id.

The session decides what happened to a reply; this module only tells the
callers waiting for it, on the client's loop. Every waiter gets an answer: a
reply, an error, or (for a stream) each message as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

from ..exceptions import NbchatError, ServerError
from ..protocol import ErrorMessage, ServerMessage
from ..reply import Reply

__all__ = ["ReplyRestarted", "StreamItem", "Waiters"]


class ReplyRestarted:
    """Yielded by :meth:`ChatClient.stream` when the server lost a reply and began it again.

    Everything the stream yielded before it is void: the reply starts over.
    """

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id

    def __repr__(self) -> str:
        return f"<ReplyRestarted {self.message_id}>"


StreamItem: TypeAlias = ServerMessage | ReplyRestarted
_Queued: TypeAlias = StreamItem | NbchatError


class Waiters:
    """The futures and stream queues of one client's pending replies."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[Reply]] = {}
        self.streams: dict[str, list[asyncio.Queue[_Queued]]] = {}
        """Open streams by message id: empty (falsy) unless someone iterates a reply."""

    def future(self, message_id: str) -> asyncio.Future[Reply]:
        """The future of the reply to ``message_id``, made on the running loop if new."""
        future = self._futures.get(message_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # A reply nobody awaits must not log "exception was never retrieved".
            future.add_done_callback(_consume_exception)
            self._futures[message_id] = future
        return future

    def stream(
        self,
        message_id: str,
        backlog: list[ServerMessage],
        abandon: Callable[[str], None],
    ) -> AsyncIterator[StreamItem]:
        """Iterate over the reply to ``message_id``, ``backlog`` first; ``abandon`` if left."""
        queue: asyncio.Queue[_Queued] = asyncio.Queue()
        for message in backlog:
            queue.put_nowait(message)
        self.streams.setdefault(message_id, []).append(queue)
        return self._iterate(message_id, queue, abandon)

    # What happened to a reply

    def received(self, message: ServerMessage) -> None:
        """A message of a reply (the session hands acks over apart: they never come here)."""
        for queue in self.streams.get(message.reply_to or "", ()):
            queue.put_nowait(message)

    def completed(self, message_id: str, reply: Reply) -> None:
        """The reply is complete."""
        future = self._futures.pop(message_id, None)
        if future is not None and not future.done():
            future.set_result(reply)

    def restarted(self, message_id: str) -> None:
        """The server lost the reply and begins it again."""
        for queue in self.streams.get(message_id, ()):
            queue.put_nowait(ReplyRestarted(message_id))

    def failed(self, message_id: str, error: NbchatError) -> None:
        """The reply will never be complete."""
        future = self._futures.pop(message_id, None)
        if future is not None and not future.done():
            future.set_exception(error)
        for queue in self.streams.get(message_id, ()):
            queue.put_nowait(error)

    def forget(self) -> None:
        """The loop these waiters live on has ended: nothing can wake them any more."""
        for future in self._futures.values():
            if not future.done():
                future.cancel()
        self._futures.clear()
        self.streams.clear()

    async def _iterate(
        self,
        message_id: str,
        queue: asyncio.Queue[_Queued],
        abandon: Callable[[str], None],
    ) -> AsyncIterator[StreamItem]:
        finished = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, NbchatError):
                    finished = True
                    raise item
                if isinstance(item, ErrorMessage):
                    finished = True
                    raise ServerError(item.error.code, item.error.message)
                finished = getattr(item, "type", None) == "done"
                yield item
                if finished:
                    return
        finally:
            queues = self.streams.get(message_id, [])
            with contextlib.suppress(ValueError):
                queues.remove(queue)
            if not queues:
                self.streams.pop(message_id, None)
            if not finished:
                abandon(message_id)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
