"""The one turn type: built from a reply, how it ended, and its pieces in arrival order."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest

from nbchat.protocol import (
    AckMessage,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ReasoningMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    Usage,
)
from nbchat.reply import Reply, ReplyBuilder
from nbchat.turn import TRUNCATED_NOTE, Turn

pytestmark = pytest.mark.unit


def reply(*messages: ServerMessage) -> Reply:
    """The reply to message m1 made of ``messages``, assembled as the client does."""
    builder = ReplyBuilder("m1", "c1")
    for message in messages:
        builder.feed(message)
    return builder.build()


RUNNING = ToolCall(id="t1", name="calculator", arguments={"expression": "6*7"})
DONE = ToolCall(id="t1", name="calculator", status="done", result=42)


def test_from_reply_takes_everything_the_reply_holds() -> None:
    """The widget's constructor: ids, text, tool calls, messages, error and cancel carried over."""
    built = reply(
        AckMessage(id="m1", reply_to="m1"),
        TokenMessage(response="6*7 ", reply_to="m1", conversation_id="c1"),
        ToolCallMessage(tool_calls=[RUNNING], reply_to="m1"),
        DoneMessage(reply_to="m1", cancelled=True),
    )
    turn = Turn.from_reply("What is 6*7?", built, complete=True)
    assert (turn.user, turn.message_id, turn.conversation_id) == ("What is 6*7?", "m1", "c1")
    assert (turn.assistant, turn.tool_calls, turn.cancelled) == ("6*7 ", [RUNNING], True)
    assert turn.messages == built.messages and turn.ending == "cancelled"
    assert Turn.from_reply("q", reply(), complete=False).ending == "incomplete"


def test_ending_prefers_the_error() -> None:
    """An error is reported over a cancel, a cancel over an unfinished reply."""
    error = ErrorInfo(code="agent_failed", message="down")
    assert Turn("q", error=error, cancelled=True, complete=False).ending == "error"
    assert Turn("q", cancelled=True, complete=False).ending == "cancelled"
    assert Turn("q", complete=False).ending == "incomplete"
    assert Turn("q").ending == "complete"


def test_segments_put_tool_calls_where_they_happened() -> None:
    """Text before a tool call, the call at its latest status, then the text after it."""
    built = reply(
        TokenMessage(response="Let me ", reply_to="m1"),
        TokenMessage(response="compute.", reply_to="m1"),
        ToolCallMessage(tool_calls=[RUNNING], reply_to="m1"),
        ToolResultMessage(tool_calls=[DONE], reply_to="m1"),
        TokenMessage(response="It is 42.", reply_to="m1"),
        ErrorMessage(error=ErrorInfo(), reply_to="m1"),
    )
    segments = Turn.from_reply("q", built).segments()
    assert [s if isinstance(s, str) else (s.id, s.status) for s in segments] == [
        "Let me compute.",
        ("t1", "done"),
        "It is 42.",
    ]
    [call] = [s for s in segments if isinstance(s, ToolCall)]
    assert call.arguments == {"expression": "6*7"}  # kept from the announcement


def test_a_hand_built_turn_shows_tools_then_text() -> None:
    """Without messages to order them, tool calls come before the reply text."""
    assert Turn("q", assistant="It is 42.", tool_calls=[DONE]).segments() == [DONE, "It is 42."]
    assert Turn("q").segments() == []


def test_segments_are_linear_in_the_messages() -> None:
    """Twice the messages cost twice the work: each message is looked at once."""

    def work(n: int) -> int:
        messages: list[ServerMessage] = []
        for k in range(n):
            messages.append(TokenMessage(response="w ", reply_to="m1"))
            call = ToolCall(id=f"t{k}", name="f")
            messages.append(ToolCallMessage(tool_calls=[call], reply_to="m1"))
        turn = Turn.from_reply("q", reply(*messages))
        count = 0

        def tracer(frame: FrameType, event: str, arg: Any) -> Any:
            nonlocal count
            count += event == "line"
            return tracer

        previous = sys.gettrace()
        sys.settrace(tracer)
        try:
            turn.segments()
        finally:
            sys.settrace(previous)
        return count

    small, large = work(200), work(400)
    assert abs(large - 2 * small) <= 0.01 * large, (small, large)


def test_how_a_turn_ended_is_worded_once() -> None:
    """A stopped turn says "stopped", an unfinished one says so, a complete one says nothing."""
    assert Turn("q", cancelled=True).note == "stopped"
    assert Turn("q", complete=False).note.startswith("incomplete")
    assert Turn("q").note == "" and Turn("q", error=ErrorInfo(code="x", message="y")).note == ""


def test_only_a_reply_with_nothing_to_show_is_a_blank_bubble() -> None:
    """Text, a tool call, an error or an unfinished reply each rule out the blank bubble."""
    assert Turn("q").blank and Turn("q", cancelled=True).blank
    assert not Turn("q", assistant="a").blank and not Turn("q", complete=False).blank
    assert not Turn("q", tool_calls=[RUNNING]).blank
    assert not Turn("q", error=ErrorInfo(code="x", message="y")).blank


def test_a_turn_takes_reasoning_usage_and_truncation_from_its_reply() -> None:
    """``Turn.from_reply`` keeps the reasoning, the usage and the cut, which is its note."""
    builder = ReplyBuilder("m", "c")
    builder.feed(ReasoningMessage(text="hmm"))
    builder.feed(TokenMessage(response="par"))
    builder.feed(DoneMessage(usage=Usage(prompt_tokens=3, completion_tokens=1), truncated=True))
    turn = Turn.from_reply("q", builder.build())
    assert (turn.reasoning, turn.assistant, turn.usage) == ("hmm", "par", builder.usage)
    assert turn.note == TRUNCATED_NOTE and turn.segments() == ["par"]
    assert Turn("q", truncated=True, cancelled=True).note == "stopped"


def test_reasoning_alone_is_not_a_blank_bubble() -> None:
    """A reply that only reasoned shows its thinking, not an empty bubble."""
    assert not Turn("q", reasoning="thinking").blank
