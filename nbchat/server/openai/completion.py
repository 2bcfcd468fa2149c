"""One round of a reply: one streamed completion, its tokens yielded as they arrive.

Each ``delta.content`` is yielded as a ``token`` the moment it is decoded;
``delta.tool_calls`` fragments are gathered by ``index``
(:class:`~nbchat.server.openai.toolcalls.ToolCallAccumulator`). The request is
retried on 429 with jittered exponential backoff (or the server's
``Retry-After``). The reply's deadline (the bridge's ``reply_timeout``) bounds
every wait on the upstream, so one that sends empty deltas or a byte a second
cannot keep a reply open. Whatever goes wrong lands in :attr:`Round.error`, mapped by
:class:`~nbchat.server.openai.upstream.UpstreamErrors`. The HTTP response is
closed in ``finally``, so a cancel ends the request at the model server too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ...protocol import ErrorMessage, TokenMessage
from .toolcalls import ToolCallAccumulator, chunk_delta
from .upstream import UpstreamErrors, error

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream

__all__ = ["Deadline", "Retries", "Round", "create", "stream_round"]

T = TypeVar("T")

logger = logging.getLogger("nbchat.server.bridge")

_FORWARD_EVERY = 16
"""Tokens decoded in a row before the server is let to forward them (and the first).

Once per token doubled the CPU of both the bridge and its clients at 10,000 tokens/s
(benchmarks/bridge_overhead.py), for nothing: a paced stream pauses for the network
between chunks anyway. A burst waits at most 16 decodes (about 1 ms)."""
_MAX_RETRY_DELAY = 30.0


@dataclass
class Round:
    """What one streamed completion produced."""

    text: list[str] = field(default_factory=list)
    size: int = 0
    """Characters of text this round, against ``max_reply_chars``."""
    calls: ToolCallAccumulator = field(default_factory=ToolCallAccumulator)
    error: ErrorMessage | None = None


@dataclass(frozen=True)
class Retries:
    """How a rate-limited (429) request is retried."""

    max_retries: int
    retry_delay: float
    """The first backoff delay, doubled each retry (jittered, capped)."""
    url: str
    """Redacted: for the log line of each retry."""


async def stream_round(
    client: AsyncOpenAI,
    body: dict[str, Any],
    current: Round,
    *,
    errors: UpstreamErrors,
    retries: Retries,
    max_reply_chars: int,
    deadline: Deadline,
) -> AsyncGenerator[TokenMessage, None]:
    """One completion: yield its tokens, fill ``current``; errors land in ``current.error``."""
    import openai

    stream: AsyncStream[object] | None = None
    try:
        stream = await deadline.wait(create(client, body, retries))
        chunks = stream.__aiter__()
        while True:
            try:
                chunk = await deadline.wait(chunks.__anext__())
            except StopAsyncIteration:
                break
            delta = chunk_delta(chunk)
            content = delta.get("content")
            if content and isinstance(content, str):
                current.size += len(content)
                if current.size > max_reply_chars:
                    current.error = error(
                        "reply_too_long",
                        f"the model's reply passed {max_reply_chars} characters, so the "
                        "bridge stopped it: ask for something shorter, or set max_tokens",
                    )
                    return
                current.text.append(content)
                yield TokenMessage(response=content)
                if len(current.text) % _FORWARD_EVERY == 1:
                    # Chunks that arrived together are decoded without a pause: let the
                    # server forward what is decoded (the first token at once).
                    await asyncio.sleep(0)
            if delta.get("tool_calls"):
                current.calls.add_deltas(delta["tool_calls"])
    except _PastDeadline:
        current.error = error(
            "upstream_timeout",
            f"the reply took longer than {deadline.seconds:g}s, the bridge's limit for one "
            "reply, so it stopped: ask for something shorter, or raise reply_timeout",
        )
    except openai.OpenAIError as exc:
        broken = stream is not None and not isinstance(exc, openai.APITimeoutError)
        if broken and isinstance(exc, openai.APIConnectionError):
            current.error = errors.broke(exc)
        else:
            current.error = await errors.map(exc)
    except Exception as exc:
        if not type(exc).__module__.startswith(("httpx", "httpcore")):
            raise
        current.error = errors.broke(exc)  # a transport error the SDK left unwrapped
    finally:
        if stream is not None:
            # Closing the response closes its connection: the server sees the request end.
            await stream.close()


class _PastDeadline(Exception):
    """A wait on the upstream passed the reply's deadline."""


class Deadline:
    """The end of one reply's time: every wait on the upstream made through :meth:`wait`.

    A timer armed around each wait cancels the waiting task at the deadline (a
    call to ``call_at``, cheaper than a task per chunk, on every Python).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._when = self._loop.time() + seconds
        self._expired = False

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``; raises :exc:`_PastDeadline` once the deadline passes."""
        task = asyncio.current_task()
        assert task is not None

        def expire() -> None:
            self._expired = True
            task.cancel()

        timer = self._loop.call_at(self._when, expire)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self._expired:
                raise
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()
            raise _PastDeadline from None
        finally:
            timer.cancel()


async def create(
    client: AsyncOpenAI, body: dict[str, Any], retries: Retries
) -> AsyncStream[object]:
    """Open a streamed completion, retrying 429s with jittered exponential backoff.

    The SDK sends the request, decodes the SSE stream and raises its typed
    errors, but hands the chunks over as decoded JSON (its public ``post``):
    building its typed chunk models made reading a stream 2.3 times slower
    (2,600-3,000 against 6,700 chunks/s on one core, docs/benchmarks.md), and
    only three fields are read.
    """
    import openai

    attempt = 0
    while True:
        try:
            return await client.post(
                "/chat/completions",
                body=body,
                cast_to=object,  # decoded JSON as is: no model, no per-field walk
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
        except openai.RateLimitError as exc:
            if attempt >= retries.max_retries:
                raise
            delay = _retry_after(exc) or retries.retry_delay * 2**attempt * random.uniform(0.5, 1)
            delay = min(delay, _MAX_RETRY_DELAY)
            logger.info("%s is rate limiting: retry %d in %.1fs", retries.url, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1


def _retry_after(exc: Exception) -> float | None:
    """The server's ``Retry-After`` in seconds, when it sent a number."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if value is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, float(value))
    return None
