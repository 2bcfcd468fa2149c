"""A scripted OpenAI-compatible server for tests and benchmarks: real HTTP, real SSE.

Tornado (already installed with ipykernel) serves ``POST /v1/chat/completions``
and ``GET /v1/models`` on a loopback port. Each request takes the next
:class:`Script` from :attr:`Upstream.script`; when none is queued it answers
``You said: <last user message>`` word by word, so conversations work unscripted.
Chunks are shaped like real providers':

* :func:`text_chunks`: content split into pieces (first delta carries the role);
* :func:`tool_chunks`: tool calls with their argument JSON split mid-string, one
  ``index`` per call (OpenAI, vLLM, llama.cpp); ``parallel`` interleaves them;
* :func:`ollama_tool_chunks`: each call whole in one chunk, every one at index 0
  with a new id (Ollama);
* :func:`reasoning_chunks`: reasoning deltas (``reasoning_content`` or ``reasoning``)
  before the text; ``text_chunks(..., finish="length")``: a reply cut at the limit;
* ``Reply(usage={...})``: a last chunk with ``usage`` and no choices, sent when the
  request asks (``stream_options.include_usage``), as OpenAI and llama.cpp do;
* :class:`Status`: an error status with an OpenAI-shaped error body;
  ``Upstream(refuse_stream_options=True)`` answers any request carrying
  ``stream_options`` with a 400 naming it; ``Upstream(strict_content=True)`` answers
  an assistant message whose ``content`` is null with a 500, as llama-cpp-python's
  server does; ``Upstream(unknown_model=400)`` answers an unknown model as LiteLLM does;
* ``Reply(..., delay=s)`` and ``Reply(endless=True)``: a slow stream, to cancel.

What the server saw is kept: :attr:`Upstream.requests` (bodies and headers),
and :attr:`Upstream.disconnected` is set when a client goes away before its
stream ended (the proof that a cancel closed the upstream request).

Run ``python -m tests.openai_upstream [--tokens N] [--rate R]`` for a standalone
fast upstream (the benchmark): it prints its base URL and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

__all__ = [
    "Reply",
    "Status",
    "Upstream",
    "ollama_tool_chunks",
    "reasoning_chunks",
    "text_chunks",
    "tool_chunks",
]

Chunk = dict[str, Any]


def _chunk(delta: dict[str, Any], finish: str | None = None, model: str = "scripted") -> Chunk:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def text_chunks(*pieces: str, finish: str = "stop") -> list[Chunk]:
    """A text reply in these pieces, then ``finish_reason`` (``stop``; ``length`` when cut)."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": piece}) for piece in pieces]
    chunks.append(_chunk({}, finish))
    return chunks


def reasoning_chunks(
    reasoning: list[str], text: list[str], *, field: str = "reasoning_content"
) -> list[Chunk]:
    """Reasoning deltas in ``field`` (DeepSeek, vLLM: ``reasoning_content``; OpenRouter,
    Ollama: ``reasoning``), each with ``content: null``, then the answer's text."""
    chunks = [_chunk({"role": "assistant", "content": None})]
    chunks += [_chunk({field: piece, "content": None}) for piece in reasoning]
    return chunks + text_chunks(*text)[1:]


def _split(text: str, parts: int) -> list[str]:
    """Cut text into ``parts`` pieces at arbitrary places (mid-string, mid-escape)."""
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def tool_chunks(
    *calls: tuple[str, str, str], parallel: bool = False, parts: int = 3, content: str = ""
) -> list[Chunk]:
    """Tool calls ``(id, name, arguments JSON text)``, arguments split into ``parts`` pieces.

    Sequential by default (all of call 0, then call 1); ``parallel=True``
    interleaves the fragments of every call, as OpenAI's parallel calls arrive.
    """
    chunks = [_chunk({"role": "assistant", "content": content or None})]
    streams: list[list[Chunk]] = []
    for index, (call_id, name, arguments) in enumerate(calls):
        head = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        stream = [_chunk({"tool_calls": [head]})]
        stream += [
            _chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in _split(arguments, parts)
        ]
        streams.append(stream)
    if parallel:
        longest = max(len(stream) for stream in streams)
        chunks += [s[i] for i in range(longest) for s in streams if i < len(s)]
    else:
        chunks += [chunk for stream in streams for chunk in stream]
    chunks.append(_chunk({}, "tool_calls"))
    return chunks


def ollama_tool_chunks(*calls: tuple[str, str, str]) -> list[Chunk]:
    """Tool calls as Ollama streams them: each whole in one chunk, all at index 0."""
    chunks = [_chunk({"role": "assistant", "content": ""})]
    for call_id, name, arguments in calls:
        call = {
            "index": 0,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        chunks.append(_chunk({"tool_calls": [call]}))
    chunks.append(_chunk({}, "tool_calls"))
    return chunks


@dataclass
class Reply:
    """A streamed answer: these chunks, ``delay`` seconds apart; or tokens until cancelled."""

    chunks: list[Chunk] = field(default_factory=list)
    delay: float = 0.0
    endless: bool = False
    """Stream ``tick`` tokens every ``delay`` seconds until the client goes away."""
    stamped: int = 0
    """Stream this many tokens, each the ``time.monotonic()`` at which it was written."""
    abort: bool = False
    """Drop the connection after the chunks, without ``[DONE]``: a server that died."""
    usage: dict[str, int] | None = None
    """Sent as a last chunk with no choices when the request asks for usage."""


@dataclass
class Status:
    """An HTTP error answer with an OpenAI-shaped body."""

    status: int
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)


Script = Reply | Status


@dataclass
class Seen:
    """One request the upstream received."""

    body: dict[str, Any]
    headers: dict[str, str]
    finished: bool = False
    """True when the whole stream was written; False if the client left first."""


class Upstream:
    """The scripted server; ``async with Upstream() as upstream`` binds a free loopback port."""

    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("scripted", "other-model"),
        api_key: str | None = None,
        tokens: int | None = None,
        rate: float | None = None,
        refuse_stream_options: bool = False,
        strict_content: bool = False,
        unknown_model: int = 404,
    ) -> None:
        self.refuse_stream_options = refuse_stream_options
        """Answer a request carrying ``stream_options`` with a 400 naming it."""
        self.strict_content = strict_content
        """Answer an assistant message with ``content: null`` with a 500 (llama-cpp-python)."""
        self.unknown_model = unknown_model
        """The status for an unknown model: 404 (OpenAI) or 400 (LiteLLM's wording)."""
        self.models = models
        """Model names served; any other gets 404 ``model_not_found``, like real servers."""
        self.api_key = api_key
        """When set, requests must carry ``Authorization: Bearer <api_key>`` (else 401)."""
        self.tokens = tokens
        """Unscripted replies stream this many tokens instead of an echo, each the
        ``time.monotonic()`` at which it was written (one clock for every process
        of a machine, so a reader measures how long the token took to reach it)."""
        self.rate = rate
        """Unscripted replies stream this many tokens per second (None: as fast as possible)."""
        self.script: deque[Script] = deque()
        self.requests: list[Seen] = []
        self.disconnected = asyncio.Event()
        """Set when a client closes its request before the stream ended."""
        self._server: HTTPServer | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> Upstream:
        application = Application(
            [
                (r"/v1/chat/completions", _Completions, {"upstream": self}),
                (r"/v1/models", _Models, {"upstream": self}),
            ]
        )
        self._server = HTTPServer(application)
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server.add_sockets(sockets)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.stop()
        await self._server.close_all_connections()

    def completion_requests(self) -> list[dict[str, Any]]:
        """The bodies of every chat completion request, in order."""
        return [seen.body for seen in self.requests]

    # Unscripted answers

    def default_reply(self, body: dict[str, Any]) -> Reply:
        """Echo the last user message word by word; or ``tokens`` numbers at ``rate``."""
        delay = 0.0 if not self.rate else 1.0 / self.rate
        if self.tokens is not None:
            return Reply(delay=delay, stamped=self.tokens)
        last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), None)
        content = last["content"] if last else ""
        if isinstance(content, list):  # text parts (context first): the last is what was typed
            content = content[-1]["text"] if content else ""
        text = f"You said: {content}"
        return Reply(text_chunks(*(f"{word} " for word in text.split())), delay=delay)


class _Handler(RequestHandler):
    def initialize(self, upstream: Upstream) -> None:
        self.upstream = upstream

    def check_key(self) -> bool:
        """Answer 401 as OpenAI does when the key is missing or wrong."""
        key = self.upstream.api_key
        if key is None or self.request.headers.get("Authorization") == f"Bearer {key}":
            return True
        self.fail(Status(401, "Incorrect API key provided"))
        return False

    def fail(self, status: Status) -> None:
        self.set_status(status.status)
        for name, value in status.headers.items():
            self.set_header(name, value)
        kind = "invalid_request_error" if status.status < 500 else "server_error"
        self.finish({"error": {"message": status.message, "type": kind, "code": None}})


class _Models(_Handler):
    def get(self) -> None:
        if self.check_key():
            models = [{"id": m, "object": "model", "owned_by": "me"} for m in self.upstream.models]
            self.finish({"object": "list", "data": models})


class _Completions(_Handler):
    async def post(self) -> None:
        body = json.loads(self.request.body)
        seen = Seen(body, dict(self.request.headers))
        self.upstream.requests.append(seen)
        if not self.check_key():
            return
        if body.get("model") not in self.upstream.models:
            if self.upstream.unknown_model == 400:
                message = f"Invalid model name passed in model={body.get('model')}"
                self.fail(Status(400, message))
            else:
                self.fail(Status(404, f"The model `{body.get('model')}` does not exist"))
            return
        if self.upstream.refuse_stream_options and "stream_options" in body:
            self.fail(Status(400, "Unrecognized request argument supplied: stream_options"))
            return
        nulls = [m for m in body["messages"] if m["role"] == "assistant" and m["content"] is None]
        if self.upstream.strict_content and nulls:
            self.fail(Status(500, "'NoneType' object has no attribute 'strip'"))
            return
        script = (
            self.upstream.script.popleft()
            if self.upstream.script
            else self.upstream.default_reply(body)
        )
        if isinstance(script, Status):
            self.fail(script)
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        try:
            chunks: Iterable[Chunk] = _chunks(script, body.get("model", "scripted"))
            wants_usage = (body.get("stream_options") or {}).get("include_usage")
            if script.usage is not None and wants_usage:
                chunks = itertools.chain(
                    chunks, [{**_chunk({}), "choices": [], "usage": script.usage}]
                )
            for chunk in chunks:
                self.write(f"data: {json.dumps(chunk)}\n\n")
                await self.flush()
                if script.delay:
                    await asyncio.sleep(script.delay)
            if script.abort:
                self.request.connection.close()  # type: ignore[union-attr]
                return
            self.write("data: [DONE]\n\n")
            await self.flush()
        except StreamClosedError:
            return  # on_connection_close has recorded it
        seen.finished = True
        self.finish()

    def on_connection_close(self) -> None:
        self.upstream.disconnected.set()


def _chunks(script: Reply, model: str) -> Iterator[Chunk]:
    if script.stamped:
        yield _chunk({"role": "assistant", "content": ""}, model=model)
        for _ in range(script.stamped):
            yield _chunk({"content": f"{time.monotonic():.6f} "}, model=model)
        yield _chunk({}, "stop", model=model)
        return
    if not script.endless:
        yield from script.chunks
        return
    yield _chunk({"role": "assistant", "content": ""}, model=model)
    number = 0
    while True:
        number += 1
        yield _chunk({"content": f"tick{number} "}, model=model)


def main(argv: list[str] | None = None) -> None:
    """Serve a fast unscripted upstream until killed; print its base URL first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None)
    args = parser.parse_args(argv)

    async def serve() -> None:
        async with Upstream(tokens=args.tokens, rate=args.rate) as upstream:
            print(upstream.base_url, flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
