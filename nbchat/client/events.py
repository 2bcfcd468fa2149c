"""The client's events: who listens to what, and calling them safely.

A listener that raises is logged and never disturbs the client; a coroutine
listener runs as a task the emitter keeps a reference to until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

from ..config import ClientConfig
from ..exceptions import ConfigError

__all__ = ["EVENTS", "ClientEvent", "Emitter", "Listening"]

logger = logging.getLogger("nbchat.client")

ClientEvent: TypeAlias = Literal[
    "open",
    "close",
    "error",
    "message",
    "reply",
    "send",
    "state",
    "restart",
    "failed",
    "agent_state",
]
EVENTS: frozenset[str] = frozenset(
    {
        "open",
        "close",
        "error",
        "message",
        "reply",
        "send",
        "state",
        "restart",
        "failed",
        "agent_state",
    }
)
"""``reply(message, reply)`` follows ``message(message)`` for each message that is part of
a reply (never an ack): ``reply`` is the reply so far, as the session assembled it."""


class Emitter:
    """Listeners by event name, copied on (un)subscribe so that emitting never copies."""

    def __init__(self) -> None:
        self._listeners: dict[str, tuple[Callable[..., Any], ...]] = {name: () for name in EVENTS}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def listeners(self) -> Mapping[str, tuple[Callable[..., Any], ...]]:
        """Each event's listeners, for a caller on a hot path to skip emitting to nobody."""
        return self._listeners

    def on(self, event: ClientEvent, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback`` on ``event``; return a function that unsubscribes it."""
        if event not in EVENTS:
            raise ConfigError(f"unknown event {event!r}: use one of {sorted(EVENTS)}")
        self._listeners[event] += (callback,)

        def unsubscribe() -> None:
            callbacks = list(self._listeners[event])
            with contextlib.suppress(ValueError):
                callbacks.remove(callback)
            self._listeners[event] = tuple(callbacks)

        return unsubscribe

    def emit(self, event: str, *args: Any) -> None:
        """Call every listener of ``event`` with ``args``, in subscription order."""
        for callback in self._listeners[event]:
            try:
                result = callback(*args)
                if result is not None and inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                logger.exception("nbchat %s callback %r raised", event, callback)

    def forget_tasks(self) -> None:
        """Drop the tasks of an event loop that has ended."""
        self._tasks.clear()


class Listening:
    """The listening methods of a client (a base of :class:`~nbchat.client.ChatClient`)."""

    _events: Emitter

    def on(self, event: ClientEvent, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback`` on ``event``; return a function that unsubscribes it.

        Events and their arguments: ``open()``, ``close(code, reason)``,
        ``error(exc)``, ``state(state)``, ``send(message)`` when a message or
        cancel is accepted, ``message(message)`` for every server message
        (its ``reply_to`` is the id of the message it answers, as the client
        decided, or None), ``reply(message, reply)`` right after it for each
        message that is part of a reply (acks never are; ``reply`` is the
        :class:`~nbchat.reply.ReplyBuilder` of the session, the reply so far,
        to read, never to feed), ``restart(message_id)`` when the server had
        lost a reply and begins it again, ``failed(message_id, exc)`` when
        a reply will never be complete, and ``agent_state(conversation_id,
        state)`` when an AG-UI agent sent its shared state (``STATE_SNAPSHOT``,
        ``STATE_DELTA``; ``state`` is the state after it). A coroutine function is scheduled as a
        task. A callback that raises is logged and does not disturb the client.
        """
        return self._events.on(event, callback)

    def _listen_to_config(self, config: ClientConfig) -> None:
        """Subscribe the callbacks given in the configuration (``on_open`` ...)."""
        if config.on_open is not None:
            self.on("open", config.on_open)
        if config.on_close is not None:
            self.on("close", config.on_close)
        if config.on_error is not None:
            self.on("error", config.on_error)
        if config.on_message is not None:
            self.on("message", config.on_message)
