"""A bridge to any OpenAI-compatible model server: a :class:`Responder` streaming real replies.

OpenAI, Ollama, llama.cpp's server, vLLM and LM Studio all speak the Chat
Completions API streamed as server-sent events; :class:`OpenAIAgent` talks to
any of them through the official ``openai`` SDK (the ``openai`` extra), so the
widget, the client, transcripts and replay work unchanged against a real model.
It sits where the demo agent sits: behind a :class:`~nbchat.server.app.ChatServer`,
which keeps owning delivery (acks, dedupe, resume, cancel). A message resent
after a reconnect is answered from the server's reply log, so it never reaches
this module twice, and so never causes a second upstream request.

One reply is a loop of *rounds*. A round streams one completion: each
``delta.content`` is yielded as a ``token`` the moment it arrives, and
``delta.tool_calls`` fragments are accumulated by ``index`` (:class:`ToolCallAccumulator`).
When the round ends with tool calls, they are announced (``tool_call``,
running), validated against the tool's signature and run (server tools in a
thread, each with a time limit), their results sent (``tool_result``) and
appended to the history, one ``role: "tool"`` message per call; then the model
is asked again. At most ``max_rounds`` (8) rounds of tool calls are run per
reply; past that the reply ends with an error that says so.

The server's tools (calculator, current time, network check) are offered with
JSON Schemas generated from their type hints by :mod:`nbchat.toolspec`. A
model's bad arguments (broken JSON, wrong types, unknown tools) become an error
result shown on the card and given back to the model, which can try again.
The client's own tools (functions of a notebook, declared by the client) are
offered next to them, a server tool winning a name both have; a call of one is
sent to the client (:func:`~nbchat.server.current_client_tools`), which
validates and runs it, and its card says ``runs_in: "client"``. A client tool
has no time limit here: the person sees it run and can stop it.

Memory: each conversation keeps its history (user, assistant and tool
messages; the system prompt is prepended to every request) for at most
``max_conversations`` conversations (least recently used forgotten). Past
``max_history_chars`` characters the oldest turns are dropped, whole, never the
current one. A failed turn is forgotten (the user will ask again); a cancelled
one keeps the text the user saw.

Cancel: the server cancels the task iterating :meth:`OpenAIAgent.respond`;
the ``finally`` blocks close the upstream HTTP response at once, so the model
server sees the request end and stops generating.

Errors are mapped at this boundary into one-line protocol ``error`` messages
saying what to do; the URL is redacted (:func:`nbchat.redact.redact_url`) and
the API key never appears in an error, a log line or a transcript. A 429 is
retried with backoff ``max_retries`` times first. Other conversations go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ...exceptions import ConfigError, ToolArgumentsError
from ...protocol import (
    ErrorMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
)
from ...redact import redact_url
from ...toolspec import (
    ToolSpec,
    error_text,
    parse_arguments,
    serialize_result,
    tool_spec,
)
from ..backend import API_KEY_ENV
from ..demo import tools as _server_tools
from ..responder import ClientTools, ResponderMessage, current_client_tools
from .toolcalls import (
    MAX_CALLS_PER_ROUND,
    StreamedCall,
    ToolCallAccumulator,
    chunk_delta,
    shown_arguments,
)
from .upstream import UpstreamErrors, error

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream

_T = TypeVar("_T")

__all__ = [
    "MAX_ROUNDS",
    "SERVER_TOOLS",
    "OpenAIAgent",
    "network_check",
]

logger = logging.getLogger("nbchat.server.bridge")

MAX_ROUNDS = 8
"""Rounds of tool calls per reply before the bridge stops and says so."""
_NO_KEY = "unused"
"""Sent as the key to servers that need none: the SDK insists on one."""
_FORWARD_EVERY = 16
"""Tokens decoded in a row before the server is let to forward them (and the first).

Once per token doubled the CPU of both the bridge and its clients at 10,000 tokens/s
(benchmarks/bridge_overhead.py), for nothing: a paced stream pauses for the network
between chunks anyway. A burst waits at most 16 decodes (about 1 ms)."""
_MAX_RETRY_DELAY = 30.0
_INSTALL = "pip install 'jupyter-nbchat[openai]'"


def network_check() -> dict[str, Any]:
    """Read this machine's network interfaces, DNS configuration and local name resolution.

    Nothing is sent anywhere. (The server tool's file paths, parameters for its
    tests, are not offered to a model.)
    """
    return _server_tools.network_check()


SERVER_TOOLS: tuple[Callable[..., Any], ...] = (
    _server_tools.calculator,
    _server_tools.current_time,
    network_check,
)
"""The server's tools, offered to models by default."""


# The agent


@dataclass
class _Round:
    """What one streamed completion produced."""

    text: list[str] = field(default_factory=list)
    size: int = 0
    """Characters of text this round, against ``max_reply_chars``."""
    calls: ToolCallAccumulator = field(default_factory=ToolCallAccumulator)
    error: ErrorMessage | None = None


@dataclass
class _Outcome:
    """One finished tool call: for the card and for the model."""

    call: ToolCall
    content: str
    """The ``role: "tool"`` message content given back to the model."""


class OpenAIAgent:
    """A :class:`~nbchat.server.responder.Responder` streaming from an OpenAI-compatible API.

    ``base_url`` is the API root (``http://127.0.0.1:11434/v1`` for Ollama,
    ``https://api.openai.com/v1``); ``api_key`` defaults to ``$OPENAI_API_KEY``
    (``api_key_env``), and servers that need none get a placeholder. ``tools``
    are typed functions (or :class:`~nbchat.toolspec.ToolSpec`) offered to the
    model: the server's by default, none with ``tools=()``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        *,
        api_key_env: str = API_KEY_ENV,
        tools: Iterable[Callable[..., Any] | ToolSpec] = SERVER_TOOLS,
        max_rounds: int = MAX_ROUNDS,
        max_history_chars: int = 32_000,
        max_reply_chars: int = 1_000_000,
        max_conversations: int = 1000,
        timeout: float = 60.0,
        tool_timeout: float = 30.0,
        max_retries: int = 3,
        retry_delay: float = 1.0,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise ConfigError(f"the model bridge needs the openai package: {_INSTALL}") from None
        self.base_url = base_url
        self.model = model
        self.system = system
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_rounds = max_rounds
        self.max_history_chars = max_history_chars
        """Past this many characters of history, the oldest turns are dropped."""
        self.max_conversations = max_conversations
        self.max_reply_chars = max_reply_chars
        """A completion's text past this many characters is stopped, with an error."""
        self.timeout = timeout
        """Seconds to wait for the server to answer, and between two chunks."""
        self.tool_timeout = tool_timeout
        self.max_retries = max_retries
        """How many times a 429 (rate limited) request is retried before giving up."""
        self.retry_delay = retry_delay
        """The first backoff delay after a 429, doubled each retry (jittered, capped)."""
        specs = [tool if isinstance(tool, ToolSpec) else tool_spec(tool) for tool in tools]
        self.tools: dict[str, ToolSpec] = {spec.name: spec for spec in specs}
        self._openai_tools = [spec.openai_tool() for spec in specs]
        self._key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self._client: AsyncOpenAI = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=self._key or _NO_KEY,
            timeout=timeout,
            max_retries=0,  # 429s are retried here, where the wait can be said and bounded
        )
        self._histories: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._errors = UpstreamErrors(
            url=self.url,
            model=model,
            timeout=timeout,
            max_retries=max_retries,
            key=self._key,
            list_models=self.models,
        )

    def __repr__(self) -> str:
        return f"<OpenAIAgent {self.model!r} at {self.url}>"

    # Public methods

    @property
    def url(self) -> str:
        """The base URL with any credential in it redacted: safe to show and log."""
        return redact_url(self.base_url) or ""

    async def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
        """Stream the reply to ``text``: tokens as they arrive, tool rounds, at most one error."""
        turn: list[dict[str, Any]] = [{"role": "user", "content": text}]
        client = current_client_tools()
        offered = self._offered(client)
        used_ids: set[str] = set()
        partial: list[str] = []
        """Text of the current round, streamed but not yet part of ``turn``."""
        failed = False
        try:
            for round_number in range(self.max_rounds + 1):
                current = _Round(text=partial)
                messages = self._messages(conversation_id, turn)
                stream = self._stream(messages, current, offered)
                async with contextlib.aclosing(stream) as tokens:
                    async for message in tokens:
                        yield message
                if current.error is not None:
                    failed = True
                    yield current.error
                    return
                content = "".join(partial)
                if not current.calls.calls:
                    turn.append({"role": "assistant", "content": content})
                    partial.clear()
                    return
                if round_number == self.max_rounds:
                    failed = True
                    yield error(
                        "tool_rounds",
                        f"the model asked for tools {self.max_rounds} rounds in a row without "
                        "answering, so the bridge stopped: ask again, more simply",
                    )
                    return
                outcomes: list[_Outcome] = []
                running = self._run_tools(current.calls, round_number, outcomes, client, used_ids)
                async with contextlib.aclosing(running) as results:
                    async for message in results:
                        yield message
                turn.append(_assistant_message(content, outcomes))
                turn.extend(
                    {"role": "tool", "tool_call_id": o.call.id, "content": o.content}
                    for o in outcomes
                )
                partial.clear()
        finally:
            if not failed:  # a cancelled turn keeps what the user saw
                if partial:
                    turn.append({"role": "assistant", "content": "".join(partial)})
                self._commit(conversation_id, turn)

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        """A copy of a conversation's messages as sent upstream (system prompt excluded)."""
        return [dict(message) for message in self._histories.get(conversation_id, [])]

    async def models(self, limit: int = 200) -> list[str]:
        """The model names the endpoint offers (``GET /models``), at most ``limit``."""
        names: list[str] = []
        async for model in await self._client.models.list():
            if len(names) >= limit:
                break
            names.append(model.id)
        return names

    async def aclose(self) -> None:
        """Release the HTTP connection pool."""
        await self._client.close()

    # Private methods: history

    def _messages(self, conversation_id: str, turn: list[dict[str, Any]]) -> list[dict[str, Any]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self._histories.get(conversation_id, []), *turn]

    def _commit(self, conversation_id: str, turn: list[dict[str, Any]]) -> None:
        history = self._histories.pop(conversation_id, [])
        history.extend(turn)
        self._histories[conversation_id] = history  # most recently used last
        while len(self._histories) > self.max_conversations:
            self._histories.popitem(last=False)
        # Drop whole turns (a user message and what answered it), oldest first, never
        # the last one: one pass over the history.
        size = sum(_size(message) for message in history)
        cut = 0
        for start, message in enumerate(history):
            if size <= self.max_history_chars:
                break
            if start > cut and message["role"] == "user":
                size -= sum(_size(dropped) for dropped in history[cut:start])
                cut = start
        del history[:cut]

    # Private methods: streaming

    async def _stream(
        self, messages: list[dict[str, Any]], current: _Round, tools: list[dict[str, Any]]
    ) -> AsyncGenerator[ResponderMessage, None]:
        """One completion: yield its tokens, fill ``current``; errors land in ``current.error``."""
        import openai

        stream: AsyncStream[object] | None = None
        try:
            stream = await self._create(messages, tools)
            async for chunk in stream:
                delta = chunk_delta(chunk)
                content = delta.get("content")
                if content and isinstance(content, str):
                    current.size += len(content)
                    if current.size > self.max_reply_chars:
                        current.error = error(
                            "reply_too_long",
                            f"the model's reply passed {self.max_reply_chars} characters, so the "
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
        except openai.OpenAIError as exc:
            broken = stream is not None and not isinstance(exc, openai.APITimeoutError)
            if broken and isinstance(exc, openai.APIConnectionError):
                current.error = self._errors.broke(exc)
            else:
                current.error = await self._errors.map(exc)
        except Exception as exc:
            if not type(exc).__module__.startswith(("httpx", "httpcore")):
                raise
            current.error = self._errors.broke(exc)  # a transport error the SDK left unwrapped
        finally:
            if stream is not None:
                # Closing the response closes its connection: the server sees the request end.
                await stream.close()

    async def _create(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> AsyncStream[object]:
        """Open a streamed completion, retrying 429s with jittered exponential backoff.

        The SDK sends the request, decodes the SSE stream and raises its typed
        errors, but hands the chunks over as decoded JSON (its public ``post``):
        building its typed chunk models made reading a stream 2.3 times slower
        (2,600-3,000 against 6,700 chunks/s on one core, docs/benchmarks.md), and
        only three fields are read.
        """
        import openai

        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        tools = self._openai_tools if tools is None else tools
        if tools:
            body["tools"] = tools
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        attempt = 0
        while True:
            try:
                return await self._client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=object,  # decoded JSON as is: no model, no per-field walk
                    stream=True,
                    stream_cls=openai.AsyncStream[object],
                )
            except openai.RateLimitError as exc:
                if attempt >= self.max_retries:
                    raise
                delay = _retry_after(exc) or self.retry_delay * 2**attempt * random.uniform(0.5, 1)
                delay = min(delay, _MAX_RETRY_DELAY)
                logger.info("%s is rate limiting: retry %d in %.1fs", self.url, attempt + 1, delay)
                await asyncio.sleep(delay)
                attempt += 1

    # Private methods: tools

    def _offered(self, client: ClientTools) -> list[dict[str, Any]]:
        """The server's tools, then the client's whose names the server does not use."""
        offered = list(self._openai_tools)
        for name, info in client.available.items():
            if name not in self.tools:
                function: dict[str, Any] = {
                    "name": name,
                    "description": info.description,
                    "parameters": info.parameters or {"type": "object", "properties": {}},
                }
                offered.append({"type": "function", "function": function})
        return offered

    async def _run_tools(
        self,
        calls: ToolCallAccumulator,
        round_number: int,
        outcomes: list[_Outcome],
        client: ClientTools,
        used_ids: set[str],
    ) -> AsyncGenerator[ResponderMessage, None]:
        """Announce the round's calls, run them concurrently, yield each result as it lands."""
        announced: list[tuple[ToolCall, StreamedCall]] = []
        for number, streamed in enumerate(calls.calls):
            call_id = streamed.id or f"call_{round_number}_{number}"
            if call_id in used_ids:  # a model reusing an id: each call keeps its own card
                call_id = f"{call_id}_{round_number}_{number}"
            used_ids.add(call_id)
            streamed.id = call_id
            in_client = streamed.name not in self.tools and streamed.name in client.available
            announced.append(
                (
                    ToolCall(
                        id=call_id,
                        name=streamed.name or "?",
                        arguments=shown_arguments(streamed),
                        runs_in="client" if in_client else None,
                    ),
                    streamed,
                )
            )
        yield ToolCallMessage(tool_calls=[call for call, _ in announced])
        tasks = [
            asyncio.ensure_future(
                self._run_in_client(call, streamed, number, client)
                if call.runs_in == "client"
                else self._run_one(call, streamed, number)
            )
            for number, (call, streamed) in enumerate(announced)
        ]
        finished: dict[int, _Outcome] = {}
        try:
            for next_done in asyncio.as_completed(tasks):
                number, outcome = await next_done
                finished[number] = outcome
                yield ToolResultMessage(tool_calls=[outcome.call])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        outcomes.extend(finished[number] for number in sorted(finished))

    async def _run_in_client(
        self, call: ToolCall, streamed: StreamedCall, number: int, client: ClientTools
    ) -> tuple[int, _Outcome]:
        """Send the call to the client, which validates and runs it; wait for the outcome."""
        if number >= MAX_CALLS_PER_ROUND:
            message = f"too many tool calls at once (at most {MAX_CALLS_PER_ROUND})"
            return number, _Outcome(
                call.model_copy(update={"status": "error", "result": message}), f"error: {message}"
            )
        try:
            arguments = parse_arguments(streamed.arguments, call.name)
        except ToolArgumentsError as exc:
            failed = call.model_copy(update={"status": "error", "result": str(exc)})
            return number, _Outcome(failed, f"error: {exc}")
        finished = await client.call(call.name, arguments, call_id=call.id)
        finished = finished.model_copy(update={"arguments": call.arguments})
        if finished.status == "done":
            return number, _Outcome(finished, serialize_result(finished.result).text)
        return number, _Outcome(finished, f"error: {finished.result}")

    async def _run_one(
        self, call: ToolCall, streamed: StreamedCall, number: int
    ) -> tuple[int, _Outcome]:
        def failed(message: str) -> tuple[int, _Outcome]:
            done = call.model_copy(update={"status": "error", "result": message})
            return number, _Outcome(done, f"error: {message}")

        if number >= MAX_CALLS_PER_ROUND:
            return failed(f"too many tool calls at once (at most {MAX_CALLS_PER_ROUND})")
        spec = self.tools.get(streamed.name)
        if spec is None:
            known = ", ".join(self.tools) or "none"
            return failed(f"unknown tool {streamed.name!r}: the tools are {known}")
        try:
            validated = spec.validate(spec.parse(streamed.arguments))
        except ToolArgumentsError as exc:
            return failed(str(exc))
        try:
            if spec.is_async:
                value = await asyncio.wait_for(spec.call(validated), self.tool_timeout)
            else:  # tools may block (file reads, DNS): never on the event loop
                value = await asyncio.wait_for(
                    asyncio.to_thread(spec.call, validated), self.tool_timeout
                )
        except asyncio.TimeoutError:
            return failed(f"{spec.name} did not finish within {self.tool_timeout:g}s")
        except Exception as exc:  # a tool's failure is its result, never the server's
            return failed(error_text(exc))
        result = serialize_result(value)
        done = call.model_copy(update={"status": "done", "result": result.value})
        return number, _Outcome(done, result.text)


# Private helpers


def _assistant_message(content: str, outcomes: list[_Outcome]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content or None,
        "tool_calls": [
            {
                "id": outcome.call.id,
                "type": "function",
                "function": {"name": outcome.call.name, "arguments": _arguments_text(outcome)},
            }
            for outcome in outcomes
        ],
    }


def _arguments_text(outcome: _Outcome) -> str:
    arguments = outcome.call.arguments
    raw = arguments.get("_raw") if len(arguments) == 1 else None
    return raw if isinstance(raw, str) else json.dumps(arguments)


def _size(message: Mapping[str, Any]) -> int:
    content = message.get("content") or ""
    calls = message.get("tool_calls") or ()
    return len(content) + sum(len(c["function"]["arguments"]) for c in calls)


def _retry_after(exc: Exception) -> float | None:
    """The server's ``Retry-After`` in seconds, when it sent a number."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if value is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, float(value))
    return None
