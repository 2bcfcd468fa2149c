"""The client's events: who listens to what, and calling them safely.

A listener that raises is logged and never disturbs the client; a coroutine
listener runs as a task the emitter keeps a reference to until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from ..exceptions import ConfigError

__all__ = ["EVENTS", "ClientEvent", "Emitter"]

logger = logging.getLogger("nbchat.client")

ClientEvent: TypeAlias = Literal[
    "open", "close", "error", "message", "send", "state", "restart", "failed"
]
EVENTS: frozenset[str] = frozenset(
    {"open", "close", "error", "message", "send", "state", "restart", "failed"}
)


class Emitter:
    """Listeners by event name, copied on (un)subscribe so that emitting never copies."""

    def __init__(self) -> None:
        self._listeners: dict[str, tuple[Callable[..., Any], ...]] = {name: () for name in EVENTS}
        self._tasks: set[asyncio.Task[Any]] = set()

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
