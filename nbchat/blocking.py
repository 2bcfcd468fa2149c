"""The blocking bridge behind every ``*_sync`` method: run a coroutine to completion, here.

Two situations, one function:

- Inside a running loop (a Jupyter cell: ipykernel runs one): the loop is made
  reentrant with ``nest_asyncio2`` and the coroutine runs on it, so the
  client's tasks and the widget's updates keep running while the cell blocks.
  ``nest_asyncio2`` is the maintained continuation of nest-asyncio; the archived
  original left the next cell hanging with ``cannot enter context`` after one
  blocking run. It is applied lazily, once per loop, only when a blocking call
  is made inside a running loop: code that never blocks never patches asyncio.
- With no running loop (a plain script): one private loop, kept for the life of
  the process, so a client started by one blocking call still has its
  connection task on the next.

Why every nested run restores the ready queue's length
------------------------------------------------------
asyncio's own ``BaseEventLoop._run_once`` counts the ready handles once
(``ntodo = len(self._ready)``) and then pops exactly that many, without looking.
``nest_asyncio2.apply`` replaces ``_run_once`` on the loop's *class*, which the
loop picks up at its next iteration; the iteration that is running the cell
which made the first blocking call stays in the original ``_run_once`` until
that cell's step returns. Every nested run made during that step (a cell that
calls ``ask_sync`` twice makes two) drains the ready queue, handles the outer
count still expects included. When the step returns, the outer ``_run_once``
pops an empty deque and the kernel dies with ``IndexError: pop from an empty
deque``. It happens only when other handles were ready in the same iteration
as the cell (a comm or zmq callback that arrived with the execute request),
hence the randomness. So each nested run puts back, as no-op handles, as many
ready handles as it consumed. After that cell the loop runs nest_asyncio2's
``_run_once``, which checks before popping; the padding then costs one no-op
per consumed handle, run at the next iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from .exceptions import NbchatError

__all__ = ["run_sync"]

T = TypeVar("T")

_reentrant: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
"""Loops this module made reentrant (weak: a closed, dropped loop leaves)."""
_lock = threading.Lock()
_private_loop: asyncio.AbstractEventLoop | None = None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, from synchronous code."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _private().run_until_complete(coro)
    try:
        _make_reentrant(loop)
    except ValueError as exc:  # nest_asyncio2 patches only asyncio's own loops
        coro.close()
        raise NbchatError(
            f"cannot block inside a running {type(loop).__name__} loop: "
            "use the async method with await instead"
        ) from exc
    with _ready_count_kept(loop):
        return loop.run_until_complete(coro)


# Private functions


@contextlib.contextmanager
def _ready_count_kept(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Leave at least as many ready handles as there were, whatever the body ran.

    See the module docstring: an outer, unpatched ``_run_once`` may still pop
    the number of handles it counted before the body ran.
    """
    ready = getattr(loop, "_ready", None)  # BaseEventLoop's ready deque
    before = len(ready) if ready is not None else 0
    try:
        yield
    finally:
        for _ in range(before - (len(ready) if ready is not None else 0)):
            loop.call_soon(_noop)


def _noop() -> None:
    """A handle that does nothing, to keep asyncio's count of ready handles true."""


def _make_reentrant(loop: asyncio.AbstractEventLoop) -> None:
    """Patch ``loop`` with nest_asyncio2, once."""
    with _lock:
        if loop in _reentrant:
            return
        import nest_asyncio2

        nest_asyncio2.apply(loop)
        _reentrant.add(loop)


def _private() -> asyncio.AbstractEventLoop:
    global _private_loop
    with _lock:
        if _private_loop is None or _private_loop.is_closed():
            _private_loop = asyncio.new_event_loop()
        return _private_loop
