"""Custom JSON-over-WebSocket backends nbchat did not write, in two shapes, and a strict one.

Each is a small websockets server on loopback (port 0) that speaks only its own
JSON, with the JsonProtocol describing it next to it (about fifteen lines, no
code). The strict backend hangs up on any frame it does not know, as a real
backend whose handler leaves its receive loop on a validation error would.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from nbchat import JsonProtocol

SESSIONS = JsonProtocol(
    text_field="message",
    conversation_field="session_id",
    session={"session_created": "session_id"},
    text={"content_delta": "delta"},
    tool_call={
        "tool_call_delta": {
            "id": "tool_call.id",
            "name": "tool_call.name",
            "arguments": "tool_call.input",
            "arguments_delta": "tool_call.input_json",
        }
    },
    tool_result={"tool_result": {"id": "tool_call_id", "output": "result", "error": "error"}},
    end=["final"],
    ignore=["message_complete"],
    error={"error": "message"},
)
"""A FastAPI-style backend: it issues a session id and streams typed events."""

EVENTS = JsonProtocol(
    event_field="event",
    text_field="prompt",
    conversation_field="thread",
    constants={"model": "tiny"},
    text={"delta": "text"},
    tool_call={"tool": {"id": "call.id", "name": "call.name", "arguments": "call.args"}},
    tool_result={"tool_output": {"id": "id", "output": "output"}},
    end=["end"],
    error={"failure": "detail"},
)
"""Another shape: ``event`` names the kind, whole tool calls, the client names the thread."""


@dataclass
class Backend:
    """A running backend: its URL and every frame it received, decoded."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    hangups: int = 0
    """Connections the backend ended because of a frame it did not know."""
    connections: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to let a reply that waits for it (the word ``wait``) go on."""


async def _sessions_reply(ws: ServerConnection, backend: Backend, frame: dict[str, Any]) -> None:
    text = frame.get("message")
    if not isinstance(text, str) or set(frame) - {"message", "session_id"}:
        raise ValueError(f"unknown frame {frame!r}")
    session = frame.get("session_id") or f"s{len(backend.received)}"
    await ws.send(json.dumps({"type": "session_created", "session_id": session}))
    if text == "fail":
        await ws.send(json.dumps({"type": "error", "message": "LLM API key is required"}))
        return
    if text.startswith("weather"):
        call = {"id": "tc1", "name": "weather", "input": None}
        await ws.send(json.dumps({"type": "tool_call_delta", "tool_call": call}))
        for piece in ('{"city": ', '"Paris"}'):
            call = {"id": "tc1", "name": "weather", "input_json": piece}
            await ws.send(json.dumps({"type": "tool_call_delta", "tool_call": call}))
        done = {"type": "tool_result", "tool_name": "weather", "tool_call_id": "tc1"}
        await ws.send(json.dumps({**done, "result": "sunny"}))
    if text == "wait":
        await backend.gate.wait()
    for word in (f"you said {text} ", f"in {session}"):
        await ws.send(json.dumps({"type": "content_delta", "delta": word, "role": "assistant"}))
    await ws.send(json.dumps({"type": "message_complete", "content": "", "tool_calls": []}))
    await ws.send(json.dumps({"type": "final", "content": "", "session_id": session}))


async def _events_reply(ws: ServerConnection, backend: Backend, frame: dict[str, Any]) -> None:
    text = frame.get("prompt")
    if not isinstance(text, str) or set(frame) != {"prompt", "thread", "model"}:
        raise ValueError(f"unknown frame {frame!r}")
    if text == "fail":
        await ws.send(json.dumps({"event": "failure", "detail": "the model is asleep"}))
        return
    if text.startswith("add"):
        call = {"id": "c1", "name": "add", "args": {"a": 40, "b": 2}}
        await ws.send(json.dumps({"event": "tool", "call": call}))
        await ws.send(json.dumps({"event": "tool_output", "id": "c1", "output": 42}))
    await ws.send(json.dumps({"event": "surprise", "n": 1}))  # undescribed: one error event
    await ws.send(json.dumps({"event": "delta", "text": f"{text} on {frame['thread']}"}))
    await ws.send(json.dumps({"event": "end"}))


_SHAPES = {"sessions": _sessions_reply, "events": _events_reply}


@asynccontextmanager
async def json_backend(shape: str) -> AsyncIterator[Backend]:
    """Serve the ``sessions`` or ``events`` backend; strict: an unknown frame ends the socket."""
    backend = Backend()
    answer = _SHAPES[shape]

    async def handler(ws: ServerConnection) -> None:
        backend.connections += 1
        async for raw in ws:
            frame = json.loads(raw)
            backend.received.append(frame)
            try:
                await answer(ws, backend, frame)
            except ValueError:
                backend.hangups += 1
                return  # the handler leaves its receive loop: the socket dies

    async with serve(handler, "127.0.0.1", 0) as server:
        backend.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"
        yield backend


@contextmanager
def json_backend_in_thread(shape: str) -> Iterator[Backend]:
    """:func:`json_backend` on a loop of its own thread, for synchronous callers (ask_sync)."""
    ready: queue.Queue[tuple[Backend, asyncio.AbstractEventLoop, asyncio.Event]] = queue.Queue()

    async def run() -> None:
        stop = asyncio.Event()
        async with json_backend(shape) as backend:
            ready.put((backend, asyncio.get_running_loop(), stop))
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    backend, loop, stop = ready.get(timeout=10)
    try:
        yield backend
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
