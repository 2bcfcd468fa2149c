"""The blocking bridge behind every ``*_sync`` method: run a coroutine to completion, here.

Two situations, one function:

- Inside a running loop (a Jupyter cell: ipykernel runs one): the loop is made
  reentrant with ``nest_asyncio2`` and the coroutine runs on it, so the
  client's tasks and the widget's updates keep running while the cell blocks.
  ``nest_asyncio2`` is the maintained continuation of nest-asyncio; the archived
  original left the next cell hanging with ``cannot enter context`` after one
  blocking run. It is applied lazily, once per loop, only when a blocking call
  is made inside a running loop: code that never blocks never patches asyncio.
- With no running loop: one loop kept for the life of the process, so a client
  started by one blocking call still has its connection task on the next. In
  terminal IPython that is IPython's own loop, the one top-level ``await``
  runs on, so ``ask_sync`` and ``await ask`` can take turns on one client; in a
  plain script it is a private loop, whose remaining tasks are cancelled and
  finished at exit (as ``asyncio.run`` does) before it is closed.

Ctrl-C (a kernel interrupt is the same SIGINT) while a call blocks cancels the
coroutine, which finishes its cleanup (``ask`` tells the server to stop the
reply), and then raises ``KeyboardInterrupt``; as ``asyncio.Runner`` does, so
the interrupt never lands inside another task, such as the connection's, and
kills it. A second Ctrl-C raises at once.

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
import atexit
import contextlib
import signal
import sys
import threading
import weakref
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import Any, TypeVar

from ..exceptions import ConfigError, NbchatError

__all__ = ["run_sync", "running_loop"]

T = TypeVar("T")

_EXIT_GRACE = 5.0
"""Seconds the tasks left on the idle loop get to finish after cancellation, at exit."""

_reentrant: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
"""Loops this module made reentrant (weak: a closed, dropped loop leaves)."""
_lock = threading.Lock()
_private_loop: asyncio.AbstractEventLoop | None = None
_closed_at_exit: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, from synchronous code.

    nbchat's own errors (:class:`NbchatError`: a replay mismatch, a timeout, a
    server's error) are raised afresh, without the frames they crossed in
    nbchat and asyncio, so the traceback a cell or a test prints is the caller's
    line and the one-line reason (``__tracebackhide__`` also hides this frame
    from pytest). Any other exception is a bug somewhere and keeps its frames.
    """
    __tracebackhide__ = True
    try:
        return _run_sync(coro)
    except NbchatError as exc:
        raise exc.with_traceback(None) from exc.__cause__


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return _run(_idle_loop(), coro)
    try:
        _make_reentrant(loop)
    except ValueError as exc:  # nest_asyncio2 patches only asyncio's own loops
        coro.close()
        raise ConfigError(
            f"cannot block inside a running {type(loop).__name__} loop: "
            "use the async method with await instead"
        ) from exc
    with _ready_count_kept(loop):
        return _run(loop, coro)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or None: what decides whether a call may block here.

    The one place this question is asked (the client refuses background work
    without a loop; the widget hands frontend actions to its home loop).
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# Private functions


def _run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` as a task on ``loop`` until done; Ctrl-C cancels it, then raises."""
    task = loop.create_task(coro)
    interrupt = _Interrupt(loop, task)
    try:
        with interrupt.installed():
            try:
                return loop.run_until_complete(task)
            except asyncio.CancelledError:
                if interrupt.happened:
                    raise KeyboardInterrupt from None
                raise
    except BaseException:
        task.cancel()  # interrupted some other way: the coroutine still hears of it
        raise


class _Interrupt:
    """The SIGINT handler while a blocking call waits: cancel its task, wake the loop.

    It stands in for Python's default handler (the one that raises
    ``KeyboardInterrupt``; ipykernel sets it while a plain cell runs), for
    ipykernel's own (set while a cell with top-level ``await`` runs: it would
    only cancel the cell once the blocking call had returned) and for an
    outer blocking call's (whose task ends with the inner call's
    ``KeyboardInterrupt``). A handler set by anyone else stays, as does an
    ignored SIGINT; and only in the main thread, where signals are delivered.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        self.happened = False
        """True once SIGINT arrived while the call waited."""
        self._loop = loop
        self._task = task

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT for the duration of the block, then restore the previous handler."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        if not _stands_in_for(previous):
            yield
            return
        signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.happened:  # a second Ctrl-C: stop waiting for the cleanup
            raise KeyboardInterrupt
        self.happened = True
        self._task.cancel()
        self._loop.call_soon_threadsafe(_noop)  # wake the selector: cancel now, not at timeout


def _stands_in_for(handler: Any) -> bool:
    """Whether a blocking call should handle SIGINT instead of ``handler`` (see _Interrupt)."""
    if handler is signal.default_int_handler or isinstance(
        getattr(handler, "__self__", None), _Interrupt
    ):
        return True
    module = getattr(handler, "__module__", None) or ""
    return module.split(".")[0] == "ipykernel"


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


def _idle_loop() -> asyncio.AbstractEventLoop:
    """The loop for blocking calls made where no loop runs: IPython's, else a private one."""
    global _private_loop
    loop = _ipython_loop()
    with _lock:
        if loop is None:
            if _private_loop is None or _private_loop.is_closed():
                _private_loop = asyncio.new_event_loop()
            loop = _private_loop
        if loop not in _closed_at_exit:
            _closed_at_exit.add(loop)
            atexit.register(_close, weakref.ref(loop))
        return loop


def _ipython_loop() -> asyncio.AbstractEventLoop | None:
    """The loop terminal IPython runs top-level ``await`` on, when in its main thread."""
    if "IPython" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return None
    from IPython import get_ipython

    if get_ipython() is None:
        return None
    try:
        from IPython.core.async_helpers import get_asyncio_loop
    except ImportError:  # IPython < 8: no shared loop to join
        return None
    loop: asyncio.AbstractEventLoop = get_asyncio_loop()  # type: ignore[no-untyped-call]
    return loop


def _close(ref: weakref.ref[asyncio.AbstractEventLoop]) -> None:
    """At exit: cancel what is left on ``loop``, let it finish, then close the loop.

    Without this the interpreter destroys the client's pending tasks
    ("Task was destroyed but it is pending!") and their cleanup then meets a
    closed loop ("Event loop is closed").
    """
    loop = ref()
    if loop is None or loop.is_closed() or loop.is_running():
        return
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=_EXIT_GRACE))
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: reported by the task's owner, not at exit
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
