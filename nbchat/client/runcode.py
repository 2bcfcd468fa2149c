r"""``run_code``: Python code run in the notebook's namespace as a cell would, off the loop.

Where it runs, and why: on nbchat's own tool threads (:mod:`nbchat.tools.threads`),
not on the kernel's thread. IPython's ``run_cell`` is not re-entrant from inside
a running cell (the one waiting on ``ask_sync``), and code run on the kernel's
thread would hold its event loop: the panel, Stop and the connection would
freeze until it ended, and a ``while True`` would need a kernel interrupt. On a
tool thread the loop stays free; the code is compiled and ``exec``'d in the
user's namespace (a last expression ``eval``'d, its value kept, as a cell
shows it); ``print`` and ``sys.stderr`` of that thread only are captured (a
proxy on ``sys.stdout``/``sys.stderr`` that forwards every other thread's text
to the kernel's streams), bounded. What it shows goes to its card, as a cell's
output would: what it ``display()``\ s (IPython's display publisher is proxied
the same way), the figures it opens (drawn, then closed, as the inline backend
does at the end of a cell) and its last value, each as a tool's value is shown
(:class:`nbchat.render.rich.Output`). The cost: code that needs the main thread
(signals, some GUI toolkits) cannot run here.

Stop and the time limit interrupt it: :class:`CodeInterrupted` is raised in its
thread (``PyThreadState_SetAsyncExc``), which ends any Python-level loop; code
blocked inside C (a long ``time.sleep``) cannot be interrupted, and its thread
is reported stuck as any tool's. ``SystemExit``, ``KeyboardInterrupt``,
``MemoryError`` and every other exception become one line of the result; the
kernel goes on.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import contextvars
import ctypes
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from ..namespace import MAX_TEXT, bounded, safe_repr
from ..render.richtypes import MAX_OUTPUT_PARTS, Output
from ..tools import THREADS
from ..tools.threads import ThreadsExhausted, ToolThreads
from ..toolspec import error_text

__all__ = ["FILENAME", "RUN_SECONDS", "CodeInterrupted", "run_code"]

RUN_SECONDS = 60.0
"""The longest ``run_code`` runs before it is interrupted."""
GRACE_SECONDS = 2.0
"""How long interrupted code gets to end before its thread is reported stuck."""
FILENAME = "<run_code>"
MAX_STREAM = MAX_TEXT // 2
"""Characters kept of stdout and of stderr each."""


class CodeInterrupted(BaseException):
    """Raised inside code run by ``run_code`` when it is stopped or past its time limit."""


class _Output:
    """One run's captured streams, bounded as they are written."""

    def __init__(self) -> None:
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}
        self.dropped = {"stdout": 0, "stderr": 0}

    def add(self, which: str, text: str) -> None:
        room = MAX_STREAM - self.sizes[which]
        kept = text[: max(room, 0)]
        self.parts[which].append(kept)
        self.sizes[which] += len(kept)
        self.dropped[which] += len(text) - len(kept)

    def text(self, which: str) -> str:
        text = "".join(self.parts[which])
        more = self.dropped[which]
        return f"{text}\n… ({more:,} more characters)" if more else text


_CAPTURE: contextvars.ContextVar[_Output | None] = contextvars.ContextVar(
    "nbchat_run_code_output", default=None
)


class _Stream:
    """``sys.stdout``/``sys.stderr`` while code runs: its text captured, others' passed on."""

    def __init__(self, target: TextIO, which: str) -> None:
        self._target = target
        self._which = which

    def write(self, text: str) -> int:
        output = _CAPTURE.get()
        if output is None:
            return self._target.write(text)
        output.add(self._which, str(text))
        return len(text)

    def flush(self) -> None:
        if _CAPTURE.get() is None:
            self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


_installed = 0
_saved: tuple[Any, Any] | None = None
_install_lock = threading.Lock()


@contextlib.contextmanager
def _capturing() -> Iterator[None]:
    """The stream and display proxies in place while any code runs (counted: runs may
    overlap)."""
    global _installed, _saved
    with _install_lock:
        if _installed == 0:
            _saved = (sys.stdout, sys.stderr)
            sys.stdout = _Stream(sys.stdout, "stdout")
            sys.stderr = _Stream(sys.stderr, "stderr")
            publisher = _display_pub()
            if publisher is not None:
                publisher.publish = _Publisher(publisher.publish)
        _installed += 1
    try:
        yield
    finally:
        with _install_lock:
            _installed -= 1
            if _installed == 0 and _saved is not None:
                if isinstance(sys.stdout, _Stream):
                    sys.stdout = _saved[0]
                if isinstance(sys.stderr, _Stream):
                    sys.stderr = _saved[1]
                publisher = _display_pub()
                if publisher is not None and isinstance(publisher.publish, _Publisher):
                    publisher.publish = publisher.publish.publish
                _saved = None


class _Run:
    """One run of code, called on a tool thread; interruptible while it executes."""

    def __init__(self, body: Any, last: Any, namespace: dict[str, Any]) -> None:
        self.body = body
        self.last = last
        self.namespace = namespace
        self.output = _Output()
        self.value: str | None = None
        self.shown: list[Any] = []
        """What the code displayed, the figures it opened, then its last value."""
        self.error: str | None = None
        self.thread: int | None = None
        self.running = False
        self.interrupted = False
        """An interrupt was sent to the code's thread (and may still be pending there)."""
        self.delivered = False
        """The interrupt was raised in the code's thread: nothing is pending any more."""
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.thread = threading.get_ident()
            self.running = True
        token = _CAPTURE.set(self.output)
        shown = _SHOWN.set(self.shown)
        try:
            with _capturing():
                figures = _figures()
                self._execute()
                self._opened(figures)
        finally:
            _SHOWN.reset(shown)
            while True:  # an interrupt arriving now must not escape into the pool's thread
                try:
                    with self.lock:
                        self.running = False
                        # Clearing only an interrupt sent and not yet raised: on CPython
                        # 3.11 each call flags the interpreter's eval breaker, and with
                        # nothing pending under a tracer (coverage, a debugger) the
                        # thread never ran again.
                        if self.interrupted and not self.delivered:
                            _set_async_exc(self.thread, None)
                    break
                except CodeInterrupted:
                    self.delivered = True
                    continue
            _CAPTURE.reset(token)

    def interrupt(self) -> bool:
        """Raise :class:`CodeInterrupted` in the code, if it still runs; whether it did."""
        with self.lock:
            if not self.running or self.thread is None:
                return False
            _set_async_exc(self.thread, CodeInterrupted)
            self.interrupted = True
            return True

    def _execute(self) -> None:
        globals_ = self.namespace
        try:
            exec(self.body, globals_)  # the person approved this code
            if self.last is not None:
                value = eval(self.last, globals_)
                if value is not None:
                    self.value = safe_repr(value)
                    _show(value)
        except CodeInterrupted:
            self.delivered = True
            self.error = "stopped"
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: a line of the result
            self.error = _error_line(exc)

    def _opened(self, before: set[int]) -> None:
        """Show the figures the code opened and left open, then close them (as a cell does)."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        with contextlib.suppress(Exception):  # pyplot's state is the user's: never fail here
            for number in sorted(set(pyplot.get_fignums()) - before):
                figure = pyplot.figure(number)
                if not any(value is figure for value in self.shown):
                    _show(figure)
                pyplot.close(figure)

    def outcome(self, note: str | None = None) -> Output:
        """The run's text for the model, and what it showed, for its card."""
        return Output(self.result(note), tuple(self.shown))

    def result(self, note: str | None = None) -> str:
        parts = []
        for which in ("stdout", "stderr"):
            text = self.output.text(which)
            if text:
                parts.append(f"{which}:\n{text.rstrip()}")
        if self.value is not None:
            parts.append(f"value: {self.value}")
        error = note or self.error
        if error is not None:
            parts.append(f"error: {error}")
        return bounded("\n".join(parts) if parts else "ran without output")


async def run_code(
    code: str,
    namespace: dict[str, Any],
    *,
    timeout: float = RUN_SECONDS,
    threads: ToolThreads = THREADS,
) -> Output:
    """Run ``code`` in ``namespace`` within ``timeout``: its output, value and error, bounded,
    and what it showed."""
    try:
        body, last = _compile(code)
    except SyntaxError as exc:
        line = f" (line {exc.lineno})" if exc.lineno else ""
        return Output(bounded(f"error: SyntaxError: {exc.msg}{line}", 500))
    except (ValueError, RecursionError, MemoryError) as exc:
        return Output(f"error: the code could not be compiled: {error_text(exc)}")
    run = _Run(body, last, namespace)
    try:
        job = threads.submit(run)
    except ThreadsExhausted as exc:
        return Output(f"error: {exc}")
    waiting = asyncio.wrap_future(job.future)
    try:
        done, _ = await asyncio.wait({waiting}, timeout=timeout)
    except asyncio.CancelledError:  # Stop: interrupt it, and say so to whoever waits
        run.interrupt()
        threads.abandon(job)
        raise
    if done:
        return run.outcome()
    run.interrupt()
    done, _ = await asyncio.wait({waiting}, timeout=GRACE_SECONDS)
    note = f"stopped: the code did not finish within {timeout:g}s"
    if not done and threads.abandon(job):
        note += " and is still running in a thread that could not be stopped"
    return run.outcome(note)


# Private helpers


_SHOWN: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "nbchat_run_code_shown", default=None
)


def _show(value: Any) -> None:
    """Keep ``value`` for the card of the code running in this thread (bounded)."""
    shown = _SHOWN.get()
    if shown is not None and len(shown) <= MAX_OUTPUT_PARTS:
        shown.append(value)


def _figures() -> set[int]:
    """The figures open before the code runs (none where pyplot was never imported)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    try:
        return set(pyplot.get_fignums()) if pyplot is not None else set()
    except Exception:  # pyplot's state is the user's
        return set()


class _Displayed:
    r"""A bundle the code ``display()``\ ed, with the display methods its formats answer to
    (so it is shown as any value with them is: nbchat.render.rich)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def _repr_png_(self) -> Any:
        return self.data.get("image/png")

    def _repr_jpeg_(self) -> Any:
        return self.data.get("image/jpeg")

    def _repr_html_(self) -> Any:
        return self.data.get("text/html")

    def _repr_markdown_(self) -> Any:
        return self.data.get("text/markdown")

    def __repr__(self) -> str:
        return str(self.data.get("text/plain", "a display"))


class _Publisher:
    """IPython's display publisher while code runs: the code's displays kept, others' sent."""

    def __init__(self, publish: Any) -> None:
        self.publish = publish

    def __call__(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        shown = _SHOWN.get()
        if shown is None or not isinstance(data, dict):
            return self.publish(data, *args, **kwargs)
        _show(_Displayed(data))
        return None


def _display_pub() -> Any:
    """The kernel's display publisher, where IPython runs one."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return getattr(shell, "display_pub", None) if shell else None


def _compile(code: str) -> tuple[Any, Any]:
    """The code's statements and, when it ends with an expression, that expression apart."""
    tree = ast.parse(code, FILENAME, "exec")
    last = None
    final = tree.body[-1] if tree.body else None
    if isinstance(final, ast.Expr):
        tree.body.pop()
        expression = ast.Expression(final.value)
        last = compile(expression, FILENAME, "eval")
    return compile(tree, FILENAME, "exec"), last


def _error_line(exc: BaseException) -> str:
    line = ""
    frames = [f for f in _frames(exc) if f[0] == FILENAME]
    if frames:
        line = f" (line {frames[-1][1]})"
    if isinstance(exc, SystemExit):
        return f"{error_text(exc)}{line}: the code asked to exit; the kernel goes on"
    return f"{error_text(exc)}{line}"


def _frames(exc: BaseException) -> list[tuple[str, int]]:
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def _set_async_exc(thread: int | None, exc: type[BaseException] | None) -> None:
    if thread is None:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exc) if exc is not None else None
    )
