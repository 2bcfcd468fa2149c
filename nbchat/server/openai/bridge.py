"""A bridge to any OpenAI-compatible model server: a :class:`Responder` streaming real replies.

OpenAI, Ollama, llama.cpp's server, vLLM and LM Studio all speak the Chat
Completions API streamed as server-sent events; :class:`OpenAIAgent` talks to
any of them through the official ``openai`` SDK (the ``openai`` extra), so the
widget, the client, transcripts and replay work unchanged against a real model.
It sits where the demo agent sits: behind a :class:`~nbchat.server.app.ChatServer`,
which keeps owning delivery (acks, dedupe, resume, cancel). A message resent
after a reconnect is answered from the server's reply log, so it never reaches
this module twice, and so never causes a second upstream request.

One reply is a loop of *rounds* (this module). A round streams one completion
(``completion.py``: tokens as they arrive, tool call fragments gathered by
``index``). When it ends with tool calls, they are announced, run and their
results sent (``calls.py``, through the executor the client uses too), and
added to the history; then the model is asked again. At most ``max_rounds``
(8) rounds of tool calls are run per reply; past that the reply ends with an
error that says so.

The server's tools (calculator, current time, network check) are offered with
JSON Schemas generated from their type hints by :mod:`nbchat.toolspec`; the
client's own tools (functions of a notebook, declared by the client) are
offered next to them, a server tool winning a name both have
(:func:`~nbchat.server.current_client_tools`). An MCP server's tools join the
server's own with :meth:`OpenAIAgent.mcp` (``nbchat serve --mcp``,
:mod:`nbchat.server.mcptools`: those that may change things only when asked).

Memory (``history.py``): each conversation's history is bounded, the system
prompt prepended to every request. A failed turn is forgotten (the user will
ask again); a cancelled one keeps the text the user saw.

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
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...config import API_KEY_ENV
from ...exceptions import ConfigError
from ...protocol import DoneMessage, Usage
from ...redact import redact_url
from ...tools.mcp import START_SECONDS
from ...toolspec import Spec, ToolSpec, tool_spec
from ..demo import tools as _server_tools
from ..mcptools import McpOffer, McpTools
from ..responder import (
    ClientTools,
    ResponderMessage,
    current_attachments,
    current_client_tools,
    current_context,
)
from .calls import Finished, run_calls
from .completion import Deadline, Retries, Round, stream_round
from .history import Histories, tool_images_message, tool_round_messages, user_message
from .upstream import UpstreamErrors, error

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "MAX_ROUNDS",
    "SERVER_TOOLS",
    "OpenAIAgent",
    "network_check",
]

MAX_ROUNDS = 8
"""Rounds of tool calls per reply before the bridge stops and says so."""
_CHECK_TIMEOUT = 10.0
"""Seconds ``nbchat serve --openai`` waits for the model server's ``/models`` at start."""
_NO_KEY = "unused"
"""Sent as the key to servers that need none: the SDK insists on one."""
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


def _add_usage(total: Usage, usage: Usage | None) -> None:
    """Add one round's token counts to the reply's (a count the server left out stays out)."""
    if usage is None:
        return
    for name in ("prompt_tokens", "completion_tokens"):
        value = getattr(usage, name)
        if value is not None:
            setattr(total, name, (getattr(total, name) or 0) + value)


# The agent


class OpenAIAgent:
    """A :class:`~nbchat.server.responder.Responder` streaming from an OpenAI-compatible API.

    ``base_url`` is the API root (``http://127.0.0.1:11434/v1`` for Ollama,
    ``https://api.openai.com/v1``); ``api_key`` defaults to ``$OPENAI_API_KEY``
    (the variable named by ``api_key_env``), and servers that need none get a
    placeholder. ``tools`` are typed functions (or
    :class:`~nbchat.toolspec.ToolSpec`) offered to the model: the server's by
    default, none with ``tools=()``.
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
        reply_timeout: float = 600.0,
        tool_timeout: float = 30.0,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        tool_choice: str | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
        vision: bool = False,
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
        self.max_reply_chars = max_reply_chars
        """A completion's text past this many characters is stopped, with an error."""
        self.timeout = timeout
        """Seconds to wait for the server to answer, and between two chunks."""
        self.reply_timeout = reply_timeout
        """Seconds one reply may take in all (every round, tools included); past them the
        reply ends with one ``upstream_timeout`` line."""
        self.tool_timeout = tool_timeout
        self.max_retries = max_retries
        """How many times a 429 (rate limited) request is retried before giving up."""
        self.retry_delay = retry_delay
        """The first backoff delay after a 429, doubled each retry (jittered, capped)."""
        self.tool_choice = tool_choice
        """``auto``, ``none``, ``required`` or ``{"type": "function", "function": {"name":
        ...}}``, sent with the tools. One that forces a call holds for a reply's first
        round only, then ``auto``: else the model could only ever call tools."""
        self.parallel_tool_calls = parallel_tool_calls
        """Whether the model may call several tools at once (None: the server's default)."""
        self.vision = vision
        """Whether the model reads images: then the images a tool's result showed (a figure)
        are shown to it after the round's tool messages, for that reply (the history keeps
        their description). An image the user attached is sent whatever this says."""
        self.extra_body = dict(extra_body or {})
        """Fields added to every request as they are (a provider's own options); the
        bridge's own fields (model, messages, stream, tools and the options above) win."""
        self._ask_usage = True
        """Whether requests ask for usage; False once the server refused the option."""
        specs = [tool if isinstance(tool, ToolSpec) else tool_spec(tool) for tool in tools]
        self._own: dict[str, Spec] = {spec.name: spec for spec in specs}
        self._mcp = McpTools(on_change=self._offer_tools)
        self.tools: dict[str, Spec] = {}
        """The server's tools offered to the model: its own, then its MCP servers'."""
        self._openai_tools: list[dict[str, Any]] = []
        self._offer_tools()
        self._key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self._client: AsyncOpenAI = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=self._key or _NO_KEY,
            timeout=timeout,
            max_retries=0,  # 429s are retried here, where the wait can be said and bounded
        )
        self._histories = Histories(max_conversations, max_history_chars)
        self._errors = UpstreamErrors(
            url=self.url,
            model=model,
            timeout=timeout,
            max_retries=max_retries,
            key=self._key,
            list_models=self.models,
            key_env=api_key_env,
        )

    def __repr__(self) -> str:
        return f"<OpenAIAgent {self.model!r} at {self.url}>"

    @property
    def description(self) -> str:
        """What answers, for the handshake's ``Nbchat-Backend`` header and the panel's."""
        return f"model {self.model!r} at {self.url}"

    # Public methods

    @property
    def url(self) -> str:
        """The base URL with any credential in it redacted: safe to show and log."""
        return redact_url(self.base_url) or ""

    @property
    def max_history_chars(self) -> int:
        """Past this many characters of history, the oldest turns are dropped."""
        return self._histories.max_chars

    @max_history_chars.setter
    def max_history_chars(self, value: int) -> None:
        self._histories.max_chars = value

    @property
    def max_conversations(self) -> int:
        """Conversations remembered; the least recently used is forgotten first."""
        return self._histories.max_conversations

    @max_conversations.setter
    def max_conversations(self, value: int) -> None:
        self._histories.max_conversations = value

    async def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
        """Stream the reply to ``text``: tokens as they arrive, tool rounds, at most one error."""
        turn: list[dict[str, Any]] = [user_message(text, current_context(), current_attachments())]
        client = current_client_tools()
        tools = self.tools  # the reply keeps these, whatever an MCP server's list becomes
        offered = self._offered(client)
        used_ids: set[str] = set()
        partial: list[str] = []
        """Text of the current round, streamed but not yet part of ``turn``."""
        for_this_reply: list[dict[str, Any]] = []
        """The tools' images shown to the model: part of ``turn``, never of the history."""
        failed = False
        deadline = Deadline(self.reply_timeout)
        usage = Usage()
        try:
            for round_number in range(self.max_rounds + 1):
                current = Round(text=partial)
                messages = self._histories.messages(conversation_id, self.system, turn)
                stream = stream_round(
                    self._client,
                    self._body(messages, offered, round_number),
                    current,
                    errors=self._errors,
                    retries=Retries(self.max_retries, self.retry_delay, self.url),
                    max_reply_chars=self.max_reply_chars,
                    deadline=deadline,
                )
                async with contextlib.aclosing(stream) as tokens:
                    async for token in tokens:
                        yield token
                if current.usage_refused:
                    self._ask_usage = False
                if current.error is not None:
                    failed = True
                    yield current.error
                    return
                _add_usage(usage, current.usage)
                content = "".join(partial)
                if not current.calls.calls:
                    turn.append({"role": "assistant", "content": content})
                    partial.clear()
                    truncated = current.finish_reason == "length"
                    if usage.model_fields_set or truncated:
                        counted = usage if usage.model_fields_set else None
                        yield DoneMessage(usage=counted, truncated=truncated or None)
                    return
                if round_number == self.max_rounds:
                    failed = True
                    yield error(
                        "tool_rounds",
                        f"the model asked for tools {self.max_rounds} rounds in a row without "
                        "answering, so the bridge stopped: ask again, more simply",
                    )
                    return
                finished: list[Finished] = []
                running = run_calls(
                    current.calls,
                    round_number,
                    finished,
                    tools=tools,
                    client=client,
                    used_ids=used_ids,
                    tool_timeout=self.tool_timeout,
                )
                async with contextlib.aclosing(running) as results:
                    async for message in results:
                        yield message
                turn.extend(tool_round_messages(content, ((f.call, f.content) for f in finished)))
                if self.vision:
                    shown = tool_images_message((f.call, f.images) for f in finished)
                    turn.extend(shown)
                    for_this_reply.extend(shown)
                partial.clear()
        finally:
            if not failed:  # a cancelled turn keeps what the user saw
                if partial:
                    turn.append({"role": "assistant", "content": "".join(partial)})
                kept = [m for m in turn if not any(m is shown for shown in for_this_reply)]
                self._histories.commit(conversation_id, kept)

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        """A copy of a conversation's messages as sent upstream (system prompt excluded)."""
        return self._histories.copy(conversation_id)

    async def models(self, limit: int = 200) -> list[str]:
        """The model names the endpoint offers (``GET /models``), at most ``limit``."""
        names: list[str] = []
        async for model in await self._client.models.list():
            if len(names) >= limit:
                break
            names.append(model.id)
        return names

    async def check(self) -> str:
        """Ask the server which models it offers: the line naming what is bridged, or
        :class:`~nbchat.exceptions.ConfigError` in one line (unreachable, a refused key,
        an unknown model). A server that lists no models (``/models`` answers 404) passes."""
        import openai

        try:
            names = await asyncio.wait_for(self.models(), min(self.timeout, _CHECK_TIMEOUT))
        except openai.NotFoundError:
            return f"bridging model {self.model!r} at {self.url} (it lists no models)"
        except (TimeoutError, asyncio.TimeoutError):
            raise ConfigError(
                f"the model server at {self.url} did not answer within "
                f"{min(self.timeout, _CHECK_TIMEOUT):g}s: check that it is running"
            ) from None
        except openai.OpenAIError as exc:
            raise ConfigError((await self._errors.map(exc)).error.message) from None
        if names and self.model not in names:
            raise ConfigError(await self._errors.not_found())
        return f"bridging model {self.model!r} at {self.url}"

    async def mcp(
        self,
        command: str | Sequence[str],
        *,
        allow_writes: bool = False,
        prefix: str | None = None,
        timeout: float = START_SECONDS,
    ) -> McpOffer:
        """Offer an MCP server's tools as this server's own, run here; it ends with :meth:`aclose`.

        ``command`` is a command line, an argv list or an ``http(s)://`` URL (as
        ``client.mcp``'s). Tools that are not read-only (or are destructive) are
        withheld unless ``allow_writes``: no one would be asked before they run.
        :class:`~nbchat.ToolError` (one line) when the server cannot be started
        or a name clashes; nothing is left running then.
        """
        offer = await self._mcp.add(
            command, taken=self._own, allow_writes=allow_writes, prefix=prefix, timeout=timeout
        )
        self._offer_tools()
        return offer

    async def aclose(self) -> None:
        """Release the HTTP connection pool and end the MCP servers."""
        try:
            await self._client.close()
        finally:
            await self._mcp.aclose()

    # Private methods

    def _body(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], round_number: int = 0
    ) -> dict[str, Any]:
        """The request of one round: the model, the messages, the tools and the options set."""
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "messages": messages,
            "stream": True,
        }
        if self._ask_usage:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = tools
            choice = self.tool_choice
            if round_number and choice not in (None, "auto", "none"):
                choice = "auto"  # the forced call was made: now the model may answer
            if choice is not None:
                body["tool_choice"] = choice
            if self.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = self.parallel_tool_calls
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    def _offer_tools(self) -> None:
        """The tools offered from now on: the server's own, then its MCP servers' (replaced
        whole, so a reply under way keeps the ones it started with)."""
        tools = dict(self._own)
        for name, spec in self._mcp.specs.items():
            tools.setdefault(name, spec)
        self.tools = tools
        self._openai_tools = [spec.openai_tool() for spec in tools.values()]

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
