"""Run one tool call: look it up, validate it, run it off the loop or await it, bound the result.

Every way a call can fail ends as an error :class:`~nbchat.toolspec.ToolOutcome`
with a one-line reason, never as an exception: an unknown name, arguments that
do not fit the signature, a refusal (``approve``), a time limit passed, and a
function that raised, ``SystemExit`` and ``KeyboardInterrupt`` included
(argparse raises ``SystemExit`` on bad input; raised out of a task they would
stop the event loop itself). A plain function runs on nbchat's own bounded
threads (:mod:`nbchat.tools.threads`, never the loop's default executor: it
may block, and a call that cannot be stopped must not starve the kernel); an
``async def`` is awaited on the running loop, so cancelling the caller cancels
it. The result is read and encoded off the loop too, within
:data:`SERIALIZE_SECONDS` (:mod:`nbchat.toolresult` bounds its size); with
``rich=True`` (a client's tools, whose cards a person sees) a value with a view
of its own (a DataFrame, a figure: :mod:`nbchat.render.rich`) is drawn there as
well, and its result is the text the model reads of it.

A plain function given up (a time limit, the caller cancelled) keeps running
in its thread: the outcome says so, and a cancelled caller's
``CancelledError`` carries that sentence (:func:`still_running`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeAlias, TypeVar

from ..attachments import Attachment
from ..exceptions import ToolArgumentsError
from ..render.attachable import tool_images
from ..render.rich import rich_result
from ..render.richtypes import Output
from ..toolresult import ToolResult, serialize_result
from ..toolspec import Spec, ToolOutcome, error_text, prepare_call
from .threads import Job, ThreadsExhausted, ToolThreads

__all__ = ["SERIALIZE_SECONDS", "THREADS", "Approve", "execute", "run", "still_running"]

logger = logging.getLogger("nbchat.tools")

T = TypeVar("T")

Approve: TypeAlias = Callable[[Spec], Awaitable[str | None]]
"""Asked once a call is valid, before it runs: None runs it, a string is why it does not."""

THREADS = ToolThreads()
"""The process's tool threads, shared by every client and server in it."""

SERIALIZE_SECONDS = 5.0
"""Longest a result may take to be read and encoded (its ``__iter__``, ``__repr__``...)."""

_STILL_RUNNING = "is still running in a thread that could not be stopped"


class _Raised(Exception):
    """A tool's BaseException, carried as an ordinary exception through asyncio."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(raised)
        self.raised = raised


async def execute(
    tools: Mapping[str, Spec],
    name: str | None,
    arguments: str | Mapping[str, Any] | None,
    *,
    side: str = "client",
    timeout: float | None = None,
    approve: Approve | None = None,
    threads: ToolThreads = THREADS,
    rich: bool = False,
) -> ToolOutcome:
    """Run the call of ``name`` with ``arguments`` (JSON text or a mapping) among ``tools``.

    ``rich``: a result with a view of its own gets it (``ToolOutcome.html``).
    """
    try:
        spec, validated = prepare_call(tools, name, arguments, side=side)
    except ToolArgumentsError as exc:
        return ToolOutcome.failed(str(exc))
    if approve is not None:
        refusal = await approve(spec)
        if refusal is not None:
            return ToolOutcome.failed(refusal)
    return await run(spec, validated, timeout=timeout, threads=threads, rich=rich)


async def run(
    spec: Spec,
    validated: Any,
    *,
    timeout: float | None = None,
    threads: ToolThreads = THREADS,
    rich: bool = False,
) -> ToolOutcome:
    """Call ``spec`` with validated arguments, within ``timeout`` seconds (None: no limit)."""
    try:
        if spec.is_async:
            value = await asyncio.wait_for(_guarded(spec.call(validated)), timeout)
        else:  # a tool may block: never on the event loop
            value = await _in_thread(threads, spec.name, lambda: spec.call(validated), timeout)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # a tool's failure is its result, never its caller's
        return _failed(spec.name, exc, timeout)
    try:
        what = f"the result of {spec.name}"
        result, html, images = await _in_thread(
            threads, what, lambda: _read(spec.name, value, rich), SERIALIZE_SECONDS
        )
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return _failed(f"the result of {spec.name}", exc, SERIALIZE_SECONDS)
    return ToolOutcome("done", result.value, result.text, html, images)


def still_running(cancelled: asyncio.CancelledError) -> str | None:
    """The sentence a cancelled call carries when its function still runs in a thread."""
    note = cancelled.args[0] if cancelled.args else None
    return note if isinstance(note, str) and note.endswith(_STILL_RUNNING) else None


# Private helpers


def _read(
    name: str, value: Any, rich: bool
) -> tuple[ToolResult, str | None, tuple[Attachment, ...]]:
    """The result as the model reads it, and its card's view and images when it has them.

    An :class:`Output` (code's, an MCP result's images) is always looked at: its text
    says what it showed, and its images go to a model that reads them.
    """
    shown = rich_result(value) if rich or isinstance(value, Output) else None
    if shown is None:  # code's output that showed nothing: its text, as any string
        return serialize_result(value.text if isinstance(value, Output) else value), None, ()
    return serialize_result(shown.text), shown.html, tool_images(name, shown)


async def _guarded(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await a tool's coroutine; its BaseException becomes one asyncio carries safely."""
    try:
        return await coroutine
    except asyncio.CancelledError:
        raise
    except Exception:
        raise
    except BaseException as exc:  # SystemExit out of a task would stop the loop
        raise _Raised(exc) from None


async def _in_thread(
    threads: ToolThreads, what: str, function: Callable[[], T], timeout: float | None
) -> T:
    """Run ``function`` on ``threads`` within ``timeout``; a call given up is reported stuck."""
    job: Job = threads.submit(_catching(function))
    waiting = asyncio.wrap_future(job.future)
    try:
        value: T = await asyncio.wait_for(waiting, timeout)
    except asyncio.TimeoutError:
        if threads.abandon(job):
            logger.warning("%s did not finish within %gs and %s", what, timeout, _STILL_RUNNING)
            raise _Stuck(
                f"{what} did not finish within {timeout:g}s and {_STILL_RUNNING}"
            ) from None
        raise
    except asyncio.CancelledError:
        if threads.abandon(job):
            logger.warning("%s was stopped and %s", what, _STILL_RUNNING)
            raise asyncio.CancelledError(f"{what} {_STILL_RUNNING}") from None
        raise
    return value


def _catching(function: Callable[[], T]) -> Callable[[], T]:
    def call() -> T:
        try:
            return function()
        except Exception:
            raise
        except BaseException as exc:
            raise _Raised(exc) from None

    return call


class _Stuck(Exception):
    """A call past its time limit whose thread could not be stopped."""


def _failed(name: str, exc: BaseException, timeout: float | None) -> ToolOutcome:
    if isinstance(exc, _Stuck | ThreadsExhausted):
        return ToolOutcome.failed(str(exc))
    if timeout is not None and isinstance(exc, asyncio.TimeoutError):
        return ToolOutcome.failed(f"{name} did not finish within {timeout:g}s")
    if isinstance(exc, _Raised):
        exc = exc.raised
    logger.info("tool %s raised %s", name, error_text(exc))
    return ToolOutcome.failed(error_text(exc))
