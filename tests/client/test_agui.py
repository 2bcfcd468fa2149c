"""The pure translators: AG-UI events and AI SDK parts -> v1 messages, history -> requests."""

from __future__ import annotations

import json

import pytest

from nbchat import agui, aisdk
from nbchat.exceptions import ProtocolError
from nbchat.protocol import (
    ClientToolInfo,
    DoneMessage,
    ErrorMessage,
    ReasoningMessage,
    TokenMessage,
    ToolCallMessage,
    ToolResponse,
    ToolResultMessage,
    UserMessage,
)

pytestmark = pytest.mark.unit

SHOUT = ClientToolInfo(name="shout", description="Shout.", parameters={"type": "object"})


def events(*raw: dict[str, object]) -> list[object]:
    return [agui.decode_event(json.dumps(event)) for event in raw]


def feed(run: agui.Run | aisdk.Run, items: list[object]) -> list[object]:
    return [message for item in items for message in run.feed(item)]


SERVER_TOOL_RUN = events(
    {"type": "RUN_STARTED", "threadId": "c", "runId": "r"},
    {"type": "TEXT_MESSAGE_START", "messageId": "a1", "role": "assistant"},
    {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "Let me "},
    {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a1", "delta": "add."},
    {"type": "TEXT_MESSAGE_END", "messageId": "a1"},
    {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": "add", "parentMessageId": "a1"},
    {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '{"a": 1, '},
    {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": '"b": 2}'},
    {"type": "TOOL_CALL_END", "toolCallId": "c1"},
    {"type": "TOOL_CALL_RESULT", "messageId": "t1", "toolCallId": "c1", "content": "3"},
    {"type": "REASONING_MESSAGE_CONTENT", "messageId": "z", "delta": "hmm"},
    {"type": "STATE_SNAPSHOT", "snapshot": {"count": 1}},
    {"type": "STATE_DELTA", "delta": [{"op": "replace", "path": "/count", "value": 2}]},
    {"type": "RUN_FINISHED", "threadId": "c", "runId": "r"},
)


def test_a_run_becomes_tokens_cards_reasoning_and_done() -> None:
    """Text is tokens, a server tool call a card with its result, reasoning kept, done ends."""
    threads = agui.Threads()
    body, run = threads.start(UserMessage(id="m", conversation_id="c", message="add"), [])
    out = feed(run, SERVER_TOOL_RUN)
    assert [type(m) for m in out] == [
        TokenMessage,
        TokenMessage,
        ToolCallMessage,
        ToolResultMessage,
        ReasoningMessage,
        DoneMessage,
    ]
    assert all(m.reply_to == "m" and m.conversation_id == "c" for m in out)  # type: ignore[attr-defined]
    call = out[2].tool_calls[0]  # type: ignore[attr-defined]
    assert (call.name, call.arguments, call.runs_in) == ("add", {"a": 1, "b": 2}, None)
    assert out[3].tool_calls[0].result == 3  # type: ignore[attr-defined]
    assert threads.state("c") == {"count": 2}
    assert body.thread_id == "c" and body.messages[0].content == "add"


def test_the_history_keeps_tool_calls_and_results_for_the_next_run() -> None:
    """The next run sends the user message, the assistant's tool-call message, the tool message."""
    threads = agui.Threads()
    _, run = threads.start(UserMessage(id="m", conversation_id="c", message="add"), [])
    feed(run, SERVER_TOOL_RUN)
    body, _ = threads.start(UserMessage(id="n", conversation_id="c", message="again"), [])
    roles = [m.role for m in body.messages]
    assert roles == ["user", "assistant", "tool", "user"]
    assistant = body.messages[1]
    assert assistant.content == "Let me add."
    assert assistant.tool_calls[0].function.arguments == '{"a": 1, "b": 2}'
    assert body.state == {"count": 2}


def test_a_frontend_call_ends_the_run_pending_and_the_follow_up_carries_its_result() -> None:
    """A client tool call gives no done; its result card and tool message start the next run."""
    threads = agui.Threads()
    body, run = threads.start(UserMessage(id="m", conversation_id="c", message="hi"), [SHOUT])
    assert body.tools[0].name == "shout"
    out = feed(
        run,
        events(
            {"type": "TOOL_CALL_START", "toolCallId": "k", "toolCallName": "shout"},
            {"type": "TOOL_CALL_ARGS", "toolCallId": "k", "delta": '{"text": "hi"}'},
            {"type": "TOOL_CALL_END", "toolCallId": "k"},
            {"type": "RUN_FINISHED", "threadId": "c", "runId": "r"},
        ),
    )
    assert [type(m) for m in out] == [ToolCallMessage]
    assert out[0].tool_calls[0].runs_in == "client"  # type: ignore[attr-defined]
    assert [(c.id, c.name, c.arguments, c.reply_to) for c in run.calls] == [
        ("k", "shout", {"text": "hi"}, "m")
    ]
    cards, follow_body, follow = threads.follow_up(
        run, [ToolResponse(id="k", result="HI")], [SHOUT]
    )
    assert cards[0].tool_calls[0].result == "HI"  # type: ignore[attr-defined]
    assert [m.role for m in follow_body.messages] == ["user", "assistant", "tool"]
    assert follow_body.messages[2].tool_call_id == "k" and follow.message_id == "m"


def test_a_run_started_again_rolls_the_history_back() -> None:
    """A dropped run run again sends the history as it was before its user message, once."""
    threads = agui.Threads()
    message = UserMessage(id="m", conversation_id="c", message="add")
    _, run = threads.start(message, [])
    feed(run, SERVER_TOOL_RUN[:6])
    body, _ = threads.start(message, [])
    assert [m.role for m in body.messages] == ["user"]


def test_run_error_is_one_line_and_bad_events_are_refused() -> None:
    """RUN_ERROR is one error line; what is no event is a ProtocolError; new types are skipped."""
    _, run = agui.Threads().start(UserMessage(id="m", conversation_id="c", message="x"), [])
    (error,) = feed(run, events({"type": "RUN_ERROR", "message": "model\nfailed", "code": "boom"}))
    assert isinstance(error, ErrorMessage) and error.error.message == "model failed"
    assert error.error.code == "boom" and run.finished
    with pytest.raises(ProtocolError):
        agui.decode_event("<html>")
    with pytest.raises(ProtocolError):
        agui.decode_event('{"type": "TEXT_MESSAGE_CONTENT"}')
    assert agui.decode_event('{"type": "SOMETHING_NEW"}') is None


def test_ai_sdk_parts_become_v1_messages_and_the_history_the_next_request() -> None:
    """AI SDK text, reasoning, tool input/output and finish parts; the next request holds them."""
    chats = aisdk.Chats()
    body, run = chats.start(UserMessage(id="m", conversation_id="c", message="hi"), [])
    assert body["trigger"] == "submit-message" and body["id"] == "c"
    parts = [
        {"type": "start"},
        {"type": "reasoning-delta", "id": "r", "delta": "think"},
        {"type": "text-delta", "id": "t", "delta": "Hel"},
        {"type": "text-delta", "id": "t", "delta": "lo"},
        {"type": "tool-input-available", "toolCallId": "k", "toolName": "add", "input": {"a": 1}},
        {"type": "tool-output-available", "toolCallId": "k", "output": 2},
        {"type": "finish"},
    ]
    out = feed(run, [aisdk.decode_part(json.dumps(p)) for p in parts])
    kinds = [ReasoningMessage, TokenMessage, TokenMessage, ToolCallMessage, ToolResultMessage]
    assert [type(m) for m in out] == [*kinds, DoneMessage]
    assert out[4].tool_calls[0].name == "add"  # type: ignore[attr-defined]
    assert aisdk.decode_part("[DONE]") is aisdk.END
    body, _ = chats.start(UserMessage(id="n", conversation_id="c", message="more"), [])
    assistant = body["messages"][1]
    assert assistant["parts"][0] == {"type": "text", "text": "Hello"}
    assert assistant["parts"][1]["state"] == "output-available"
    assert assistant["parts"][1]["output"] == 2
    error = aisdk.decode_part('{"type": "error", "errorText": "no\\nway"}')
    (failed,) = feed(aisdk.Chats().start(UserMessage(id="x", message="y"), [])[1], [error])
    assert isinstance(failed, ErrorMessage) and failed.error.message == "no way"
