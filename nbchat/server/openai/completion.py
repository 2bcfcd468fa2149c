"""One round of a reply: one streamed completion, its tokens yielded as they arrive.

Each ``delta.content`` is yielded as a ``token`` the moment it is decoded, and
the model's reasoning as ``reasoning`` messages: ``delta.reasoning_content``
(DeepSeek, vLLM, llama.cpp), ``delta.reasoning`` (OpenRouter, Ollama) and
``<think>`` spans in the text (:mod:`~nbchat.server.openai.thinking`);
``delta.tool_calls`` fragments are gathered by ``index``
(:class:`~nbchat.server.openai.toolcalls.ToolCallAccumulator`). The round
keeps its ``finish_reason`` (``length``: cut at the token limit) and the
``usage`` the server reports in its last chunk (asked for with
``stream_options.include_usage``; a server that refuses the option, a 400 or
422 naming it, is asked again without it, and :attr:`Round.usage_refused` says so). The request is
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
import re
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ...protocol import ErrorMessage, ReasoningMessage, TokenMessage, Usage
from .thinking import ThinkSplitter
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
_REFUSES_OPTION = re.compile(r"stream_options|include_usage", re.IGNORECASE)
"""A 400 or 422 naming the option: the server refuses it (any other 400 is the request's)."""


@dataclass
class Round:
    """What one streamed completion produced."""

    text: list[str] = field(default_factory=list)
    size: int = 0
    """Characters of text this round, against ``max_reply_chars``."""
    calls: ToolCallAccumulator = field(default_factory=ToolCallAccumulator)
    error: ErrorMessage | None = None
    finish_reason: str | None = None
    """Why the model stopped, as the server said (``stop``, ``length``, ``tool_calls``)."""
    usage: Usage | None = None
    """The tokens this round cost, when the server reported them."""
    usage_refused: bool = False
    """The server refused ``stream_options``: the round was asked again without it."""


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
) -> AsyncGenerator[TokenMessage | ReasoningMessage, None]:
    """One completion: yield its tokens and reasoning, fill ``current``; errors land in
    ``current.error``."""
    import openai

    stream: AsyncStream[object] | None = None
    think = ThinkSplitter()
    decoded = 0
    try:
        stream = await deadline.wait(_open(client, body, retries, current))
        chunks = stream.__aiter__()
        while True:
            try:
                chunk = await deadline.wait(chunks.__anext__())
            except StopAsyncIteration:
                break
            _read_ends(chunk, current)
            delta = chunk_delta(chunk)
            content = delta.get("content")
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            pieces = [(True, reasoning)] if reasoning and isinstance(reasoning, str) else []
            if content and isinstance(content, str):
                pieces += think.feed(content)
            for message in _messages(pieces, current, max_reply_chars):
                yield message
            if current.error is not None:
                return
            if pieces:
                decoded += 1
                if decoded % _FORWARD_EVERY == 1:
                    # Chunks that arrived together are decoded without a pause: let the
                    # server forward what is decoded (the first token at once).
                    await asyncio.sleep(0)
            if delta.get("tool_calls"):
                current.calls.add_deltas(delta["tool_calls"])
        for message in _messages(think.flush(), current, max_reply_chars):
            yield message
    except _PastDeadline:
        current.error = error(
            "upstream_timeout",
            f"the reply took longer than {deadline.seconds:g}s, the bridge's limit for one "
            "reply, so it stopped: ask for something shorter, or raise reply_timeout",
        )
    except openai.OpenAIError as exc:
        if stream is not None and isinstance(exc, openai.APIConnectionError):
            # Mid-stream: the server answered, then went silent (a stall) or away.
            timed_out = isinstance(exc, openai.APITimeoutError)
            current.error = errors.stalled() if timed_out else errors.broke(exc)
        else:
            current.error = await errors.map(exc)
    except Exception as exc:
        if not type(exc).__module__.startswith(("httpx", "httpcore")):
            raise
        # A transport error the SDK left unwrapped: a read timeout is a stall.
        current.error = errors.stalled() if "Timeout" in type(exc).__name__ else errors.broke(exc)
    finally:
        if stream is not None:
            # Closing the response closes its connection: the server sees the request end.
            await stream.close()


def _messages(
    pieces: list[tuple[bool, str]], current: Round, max_reply_chars: int
) -> list[TokenMessage | ReasoningMessage]:
    """The messages of some decoded pieces; past ``max_reply_chars`` the round's error instead."""
    messages: list[TokenMessage | ReasoningMessage] = []
    for thinking, text in pieces:
        current.size += len(text)
        if current.size > max_reply_chars:
            current.error = error(
                "reply_too_long",
                f"the model's reply passed {max_reply_chars} characters, so the "
                "bridge stopped it: ask for something shorter, or set max_tokens",
            )
            break
        if thinking:
            messages.append(ReasoningMessage(text=text))
        else:
            current.text.append(text)
            messages.append(TokenMessage(response=text))
    return messages


def _read_ends(chunk: object, current: Round) -> None:
    """Keep a chunk's ``finish_reason`` and ``usage`` (trusting nothing of their shape)."""
    if not isinstance(chunk, dict):
        return
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        if isinstance(reason, str):
            current.finish_reason = reason
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        counts = {
            name: value
            for name in ("prompt_tokens", "completion_tokens")
            if isinstance(value := usage.get(name), int) and not isinstance(value, bool)
        }
        if counts:
            current.usage = Usage(**counts)


async def _open(
    client: AsyncOpenAI, body: dict[str, Any], retries: Retries, current: Round
) -> AsyncStream[object]:
    """:func:`create`, asked again without ``stream_options`` if the server refuses it."""
    import openai

    try:
        return await create(client, body, retries)
    except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
        if "stream_options" not in body or not _REFUSES_OPTION.search(str(exc.body)[:2000]):
            raise
        plain = {name: value for name, value in body.items() if name != "stream_options"}
        stream = await create(client, plain, retries)
        logger.info("%s refused stream_options: asking without usage", retries.url)
        current.usage_refused = True
        return stream


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
