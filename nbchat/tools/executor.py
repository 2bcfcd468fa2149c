"""Run one tool call: look it up, validate it, run it off the loop or await it, bound the result.

Every way a call can fail ends as an error :class:`~nbchat.toolspec.ToolOutcome`
with a one-line reason, never as an exception: an unknown name, arguments that
do not fit the signature, a refusal (``approve``), a time limit passed, and a
function that raised. A plain function runs in a worker thread (it may block:
file reads, DNS, a notebook's computation), an ``async def`` is awaited on the
running loop, so cancelling the caller cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from pydantic import BaseModel

from ..exceptions import ToolArgumentsError
from ..toolspec import ToolOutcome, ToolSpec, error_text, prepare_call

__all__ = ["Approve", "execute", "run"]

logger = logging.getLogger("nbchat.tools")

Approve: TypeAlias = Callable[[ToolSpec], Awaitable[str | None]]
"""Asked once a call is valid, before it runs: None runs it, a string is why it does not."""


async def execute(
    tools: Mapping[str, ToolSpec],
    name: str | None,
    arguments: str | Mapping[str, Any] | None,
    *,
    side: str = "client",
    timeout: float | None = None,
    approve: Approve | None = None,
) -> ToolOutcome:
    """Run the call of ``name`` with ``arguments`` (JSON text or a mapping) among ``tools``."""
    try:
        spec, validated = prepare_call(tools, name, arguments, side=side)
    except ToolArgumentsError as exc:
        return ToolOutcome.failed(str(exc))
    if approve is not None:
        refusal = await approve(spec)
        if refusal is not None:
            return ToolOutcome.failed(refusal)
    return await run(spec, validated, timeout=timeout)


async def run(spec: ToolSpec, validated: BaseModel, *, timeout: float | None = None) -> ToolOutcome:
    """Call ``spec`` with validated arguments, within ``timeout`` seconds (None: no limit)."""
    try:
        if spec.is_async:
            value = await asyncio.wait_for(spec.call(validated), timeout)
        else:  # a tool may block: never on the event loop
            value = await asyncio.wait_for(asyncio.to_thread(spec.call, validated), timeout)
    except Exception as exc:  # a tool's failure is its result, never its caller's
        if timeout is not None and isinstance(exc, asyncio.TimeoutError):
            return ToolOutcome.failed(f"{spec.name} did not finish within {timeout:g}s")
        logger.info("tool %s raised %s", spec.name, error_text(exc))
        return ToolOutcome.failed(error_text(exc))
    return ToolOutcome.done(value)
