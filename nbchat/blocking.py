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
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")

_patched: set[int] = set()
_lock = threading.Lock()
_private_loop: asyncio.AbstractEventLoop | None = None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, from synchronous code."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _private().run_until_complete(coro)
    if not _make_reentrant(loop):
        return loop.run_until_complete(coro)
    # The first nested run happens inside asyncio's own, unpatched _run_once,
    # which counted the ready handles before calling us and pops that many
    # after we return. The nested run may consume some of them; pad the queue
    # with no-ops so the outer loop never pops from an empty deque (seen here:
    # "IndexError: pop from an empty deque" killing the kernel).
    ready = getattr(loop, "_ready", None)
    counted = len(ready) if ready is not None else 0
    try:
        return loop.run_until_complete(coro)
    finally:
        for _ in range(counted - (len(ready) if ready is not None else 0)):
            loop.call_soon(_noop)


def _noop() -> None:
    """A handle that does nothing, to keep asyncio's count of ready handles true."""


def _make_reentrant(loop: asyncio.AbstractEventLoop) -> bool:
    """Patch ``loop`` once; True if this call patched it."""
    with _lock:
        if id(loop) in _patched:
            return False
        import nest_asyncio2

        nest_asyncio2.apply(loop)
        _patched.add(id(loop))
        return True


def _private() -> asyncio.AbstractEventLoop:
    global _private_loop
    with _lock:
        if _private_loop is None or _private_loop.is_closed():
            _private_loop = asyncio.new_event_loop()
        return _private_loop
