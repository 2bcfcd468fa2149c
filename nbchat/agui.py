"""AG-UI: a conversation's history -> ``RunAgentInput``, a run's events -> v1 messages (pure).

An AG-UI agent (https://docs.ag-ui.com) is stateless between runs: the client
holds each thread's messages and sends them all with every run. A thread is a
conversation (thread id = conversation id). What a run adds is kept, in AG-UI's
own message models (``ag_ui.core``): the user's message, the assistant's text
and its tool calls (one assistant message per AG-UI message id), the tool
results. An agent refuses a run whose tool calls have no tool message.

:class:`Run` reads one run's events, in order, into the v1 server messages the
delivery session routes (text -> ``token``, a tool call -> a ``tool_call``
card, its result -> ``tool_result``, ``RUN_FINISHED`` -> ``done``, with the
``usage`` it may carry (one entry per provider and model) summed over the reply's
runs, ``RUN_ERROR`` -> one ``error`` line). A call of one of the client's tools (a
frontend tool) ends the run with the call pending: the run finishes with
``calls`` set and no ``done``, the shell runs them and starts the follow-up run
from :meth:`Threads.follow_up` with their results, so the reply goes on.

Reasoning (``REASONING_MESSAGE_CONTENT``/``_CHUNK``, and the ``THINKING_TEXT_MESSAGE_CONTENT``
of older agents) becomes v1 ``reasoning`` messages (``Reply.reasoning``); the
events a chat panel has no place for (steps, activity, raw, custom) are dropped.
State (``STATE_SNAPSHOT``, ``STATE_DELTA`` as a JSON Patch) is kept per thread
and sent back with the next run.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from ag_ui.core import (
    AssistantMessage,
    Context,
    Event,
    FunctionCall,
    Message,
    ReasoningMessageContentEvent,
    RunAgentInput,
    Tool,
    ToolMessage,
)
from ag_ui.core import ToolCall as AguiToolCall
from ag_ui.core import UserMessage as AguiUserMessage
from ag_ui.core.types import ImageInputContent, InputContentDataSource, TextInputContent
from pydantic import BaseModel, TypeAdapter, ValidationError

from .attachments import describe
from .exceptions import ProtocolError
from .protocol import (
    ClientToolInfo,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ReasoningMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolRequest,
    ToolResponse,
    ToolResultMessage,
    Usage,
    UserMessage,
    new_id,
)

__all__ = ["MAX_THREADS", "Run", "Thread", "Threads", "decode_event"]

MAX_THREADS = 100
"""Threads (conversations) whose history a client keeps; the least recently used go first."""

_events: TypeAdapter[Any] = TypeAdapter(Event)


def decode_event(data: str) -> Any | None:
    """One SSE ``data`` field as an AG-UI event; None for a type this client does not know.

    Raises :class:`ProtocolError` for what is no event at all (not JSON, no
    ``type``, a known type with wrong fields).
    """
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"an AG-UI event is not JSON: {data[:80]!r}", data) from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ProtocolError(f"an AG-UI event has no type: {data[:80]!r}", data)
    try:
        return _events.validate_python(raw)
    except ValidationError as exc:
        if any(error["type"] == "union_tag_invalid" for error in exc.errors()):
            if raw["type"] == "THINKING_TEXT_MESSAGE_CONTENT" and isinstance(raw.get("delta"), str):
                return ReasoningMessageContentEvent(message_id="thinking", delta=raw["delta"])
            return None  # a newer event type (THINKING_* of older agents, ...): skipped
        detail = exc.errors(include_url=False)[0]["msg"]
        raise ProtocolError(f"an AG-UI {raw['type']} event is malformed ({detail})", data) from exc


@dataclass
class Thread:
    """One conversation as an AG-UI agent sees it: its messages and its state."""

    id: str
    messages: list[Message] = field(default_factory=list)
    state: Any = None
    """The agent's shared state (``STATE_SNAPSHOT``, patched by ``STATE_DELTA``)."""


@dataclass
class _Call:
    id: str
    name: str
    parent: str | None
    args: list[str] = field(default_factory=list)


class Run:
    """One run's events -> v1 messages for the reply to ``message_id``."""

    def __init__(self, thread: Thread, message_id: str, frontend: set[str]) -> None:
        self.thread = thread
        self.message_id = message_id
        self.frontend = frontend
        """Names of the client's own tools: their calls end the run pending."""
        self.finished = False
        """RUN_FINISHED or RUN_ERROR arrived: the stream has nothing more to say."""
        self.calls: list[ToolRequest] = []
        """Calls of the client's tools this run ended with, to run before the follow-up."""
        self.usage: Usage | None = None
        """Tokens the reply cost so far, summed over its runs (``RUN_FINISHED``'s ``usage``)."""
        self.context: list[Any] = []
        """The user message's context (``@df``): every run of its reply carries it."""
        self._calls: dict[str, _Call] = {}
        self._assistant: dict[str, AssistantMessage] = {}

    def feed(self, event: Any) -> list[ServerMessage]:
        """Take one decoded event (``None``: unknown, skipped); the v1 messages it makes."""
        kind = getattr(event, "type", None)
        if kind is None:
            return []
        name = kind.value if hasattr(kind, "value") else str(kind)
        handler = getattr(self, "_on_" + name.lower(), None)
        return handler(event) if handler is not None else []

    # Text

    def _on_text_message_start(self, event: Any) -> list[ServerMessage]:
        self._message(event.message_id)
        return []

    def _on_text_message_content(self, event: Any) -> list[ServerMessage]:
        if not event.delta:
            return []
        message = self._message(event.message_id)
        message.content = (message.content or "") + event.delta
        return [self.v1(TokenMessage, response=event.delta)]

    def _on_text_message_chunk(self, event: Any) -> list[ServerMessage]:
        if not event.delta:
            return []
        event.message_id = event.message_id or self._last_message_id()
        return self._on_text_message_content(event)

    # Reasoning

    def _on_reasoning_message_content(self, event: Any) -> list[ServerMessage]:
        return [self.v1(ReasoningMessage, text=event.delta)] if event.delta else []

    _on_reasoning_message_chunk = _on_reasoning_message_content

    # Tool calls

    def _on_tool_call_start(self, event: Any) -> list[ServerMessage]:
        parent = event.parent_message_id
        self._calls[event.tool_call_id] = _Call(event.tool_call_id, event.tool_call_name, parent)
        return []

    def _on_tool_call_args(self, event: Any) -> list[ServerMessage]:
        call = self._calls.get(event.tool_call_id)
        if call is not None:
            call.args.append(event.delta)
        return []

    def _on_tool_call_chunk(self, event: Any) -> list[ServerMessage]:
        call_id = event.tool_call_id or next(reversed(self._calls), None)
        if call_id is None:
            return []
        if call_id not in self._calls:
            name = event.tool_call_name or "tool"
            self._calls[call_id] = _Call(call_id, name, event.parent_message_id)
        if event.delta:
            self._calls[call_id].args.append(event.delta)
        return []

    def _on_tool_call_end(self, event: Any) -> list[ServerMessage]:
        call = self._calls.pop(event.tool_call_id, None)
        if call is None:
            return []
        text = "".join(call.args)
        parent = self._message(call.parent or call.id)
        entry = AguiToolCall(id=call.id, function=FunctionCall(name=call.name, arguments=text))
        parent.tool_calls = [*(parent.tool_calls or []), entry]
        card = ToolCall(id=call.id, name=call.name, arguments=text)  # type: ignore[arg-type]
        if call.name in self.frontend:
            card.runs_in = "client"
            request = ToolRequest(id=call.id, name=call.name, arguments=card.arguments)
            self.calls.append(request.model_copy(update={"reply_to": self.message_id}))
        return [self.v1(ToolCallMessage, tool_calls=[card])]

    def _on_tool_call_result(self, event: Any) -> list[ServerMessage]:
        message = ToolMessage(
            id=event.message_id, tool_call_id=event.tool_call_id, content=event.content
        )
        self.thread.messages.append(message)
        name = self._name_of(event.tool_call_id)
        card = ToolCall(
            id=event.tool_call_id, name=name, status="done", result=_result(event.content)
        )
        return [self.v1(ToolResultMessage, tool_calls=[card])]

    # State and history

    def _on_state_snapshot(self, event: Any) -> list[ServerMessage]:
        self.thread.state = event.snapshot
        return []

    def _on_state_delta(self, event: Any) -> list[ServerMessage]:
        patch = [
            op.model_dump(mode="json", by_alias=True, exclude_unset=True)
            if isinstance(op, BaseModel)
            else op
            for op in event.delta
        ]
        try:
            self.thread.state = jsonpatch.apply_patch(self.thread.state or {}, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise ProtocolError(
                f"an AG-UI STATE_DELTA does not apply to the state ({exc})"
            ) from exc
        return []

    def _on_messages_snapshot(self, event: Any) -> list[ServerMessage]:
        self.thread.messages = list(event.messages)
        self._assistant = {}
        return []

    # The end

    def _on_run_finished(self, event: Any) -> list[ServerMessage]:
        self.finished = True
        self._count(getattr(event, "usage", None))
        if self.calls:
            return []
        return [self.v1(DoneMessage, usage=self.usage)]

    def _on_run_error(self, event: Any) -> list[ServerMessage]:
        self.finished = True
        self.calls = []
        text = " ".join(str(event.message).split()) or "the agent's run failed"
        info = ErrorInfo(code=event.code or "run_error", message=text)
        return [self.v1(ErrorMessage, error=info)]

    # Private methods

    def v1(self, kind: type[ServerMessage], **fields: Any) -> ServerMessage:
        """A v1 message of this run's reply."""
        return kind(conversation_id=self.thread.id, reply_to=self.message_id, **fields)

    def _count(self, usage: Any) -> None:
        """Add a run's ``usage`` (one entry per provider and model, AG-UI 1.0) to the reply's."""
        entries = usage if isinstance(usage, list) else [usage] if usage is not None else []
        prompt = [getattr(e, "input_tokens", None) for e in entries]
        completion = [getattr(e, "output_tokens", None) for e in entries]
        if all(n is None for n in (*prompt, *completion)):
            return
        before = self.usage or Usage()
        self.usage = Usage(
            prompt_tokens=_sum(before.prompt_tokens, *prompt),
            completion_tokens=_sum(before.completion_tokens, *completion),
        )

    def _message(self, message_id: str) -> AssistantMessage:
        known = self._assistant.get(message_id)
        if known is None:
            known = self._assistant[message_id] = AssistantMessage(id=message_id, content=None)
            self.thread.messages.append(known)
        return known

    def _last_message_id(self) -> str:
        return next(reversed(self._assistant), None) or new_id()

    def _name_of(self, call_id: str) -> str:
        for message in reversed(self.thread.messages):
            for call in getattr(message, "tool_calls", None) or ():
                if call.id == call_id:
                    return str(call.function.name)
        return "tool"


class Threads:
    """The histories of a client's conversations, and the requests made of them (bounded)."""

    def __init__(self, max_threads: int = MAX_THREADS) -> None:
        self.max_threads = max_threads
        self._threads: OrderedDict[str, Thread] = OrderedDict()
        self._marks: dict[str, tuple[str, int]] = {}
        """Per pending user message: its thread and the history length before it."""

    def thread(self, conversation_id: str) -> Thread:
        """The thread of a conversation, made on first use."""
        thread = self._threads.pop(conversation_id, None) or Thread(conversation_id)
        self._threads[conversation_id] = thread
        while len(self._threads) > self.max_threads:
            self._threads.popitem(last=False)
        return thread

    def state(self, conversation_id: str) -> Any:
        """The agent state of a conversation (None until the agent sent one)."""
        thread = self._threads.get(conversation_id)
        return None if thread is None else thread.state

    def start(
        self,
        message: UserMessage,
        tools: list[ClientToolInfo],
        context: list[Any] = (),  # type: ignore[assignment]
    ) -> tuple[RunAgentInput, Run]:
        """The first run of a user message: its input and its reader.

        Started again for the same message (a dropped run), the history goes
        back to what it was before the message first ran.
        """
        assert message.id is not None
        thread = self.thread(message.conversation_id or message.id)
        mark = self._marks.get(message.id)
        if mark is not None:
            del thread.messages[mark[1] :]
        else:
            self._marks[message.id] = (thread.id, len(thread.messages))
        thread.messages.append(AguiUserMessage(id=message.id, content=_content(message)))
        run = Run(thread, message.id, {tool.name for tool in tools})
        run.context = [
            *context,
            *(c.model_dump(include={"description", "value"}) for c in message.context or ()),
        ]
        return self._input(thread, tools, run.context), run

    def follow_up(
        self, run: Run, results: list[ToolResponse], tools: list[ClientToolInfo]
    ) -> tuple[list[ServerMessage], RunAgentInput, Run]:
        """The client's tools ran: their result cards, and the next run's input and reader."""
        thread = run.thread
        cards: list[ToolCall] = []
        names = {call.id: call.name for call in run.calls}
        for response in results:
            content = (
                response.result if isinstance(response.result, str) else json.dumps(response.result)
            )
            thread.messages.append(
                ToolMessage(
                    id=new_id(),
                    tool_call_id=response.id,
                    content=content,
                    error=content if response.status == "error" else None,
                )
            )
            cards.append(
                ToolCall(
                    id=response.id,
                    name=names.get(response.id, "tool"),
                    status=response.status,
                    result=response.result,
                    runs_in="client",
                )
            )
        done = run.v1(ToolResultMessage, tool_calls=cards)
        follow = Run(thread, run.message_id, run.frontend)
        follow.usage = run.usage  # one reply, several runs: its usage is their sum
        follow.context = run.context
        return [done], self._input(thread, tools, run.context), follow

    def finished(self, message_id: str) -> None:
        """The reply to ``message_id`` is over: it will not be run again."""
        self._marks.pop(message_id, None)

    def _input(
        self, thread: Thread, tools: list[ClientToolInfo], context: list[Any]
    ) -> RunAgentInput:
        return RunAgentInput(
            thread_id=thread.id,
            run_id=new_id(),
            state=thread.state,
            messages=list(thread.messages),
            tools=[
                Tool(name=t.name, description=t.description, parameters=t.parameters) for t in tools
            ],
            context=[Context.model_validate(entry) for entry in context],
            forwarded_props={},
        )


def _sum(*counts: int | None) -> int | None:
    """The sum of the counts given, None when none is."""
    known = [n for n in counts if isinstance(n, int)]
    return sum(known) if known else None


def _content(message: UserMessage) -> Any:
    """A user message's AG-UI content: its text, then a part per attachment (an image as
    data, a text as text), as AG-UI 1.0's multimodal input carries them."""
    if not message.attachments:
        return message.message
    parts: list[Any] = [TextInputContent(text=message.message)]
    for attachment in message.attachments:
        if attachment.data is not None:
            source = InputContentDataSource(value=attachment.data, mime_type=attachment.mime)
            parts.append(ImageInputContent(source=source))
        else:
            parts.append(
                TextInputContent(text=f"Attached {describe(attachment)}:\n{attachment.text}")
            )
    return parts


def _result(content: str) -> Any:
    """A tool message's content as the card shows it: decoded JSON when it is JSON."""
    try:
        return json.loads(content)
    except ValueError:
        return content
