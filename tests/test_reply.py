"""Reply assembly from server messages (pure)."""

from __future__ import annotations

import itertools

import pytest

from nbchat.protocol import (
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
from nbchat.reply import ReplyBuilder

pytestmark = pytest.mark.unit


def test_tokens_join_into_text() -> None:
    """Token deltas concatenate in order."""
    builder = ReplyBuilder("m", "c")
    for part in ["Hel", "lo", " world"]:
        assert not builder.feed(TokenMessage(response=part))
    assert builder.feed(DoneMessage())
    assert builder.build().text == "Hello world"


def test_tool_result_replaces_its_announcement_in_place() -> None:
    """A tool call keeps its position and takes its latest status and result."""
    builder = ReplyBuilder()
    builder.feed(
        ToolCallMessage(tool_calls=[ToolCall(id="a", name="x"), ToolCall(id="b", name="y")])
    )
    builder.feed(
        ToolResultMessage(tool_calls=[ToolCall(id="a", name="x", status="done", result=1)])
    )
    calls = builder.build().tool_calls
    assert [(c.id, c.status, c.result) for c in calls] == [("a", "done", 1), ("b", "running", None)]


def test_tool_result_without_arguments_keeps_the_announced_ones() -> None:
    """A result that omits the arguments keeps those announced; one that sends them wins."""
    builder = ReplyBuilder()
    announced = [
        ToolCall(id="a", name="calculator", arguments={"expression": "6*7"}),
        ToolCall(id="b", name="calculator", arguments={"expression": "1+1"}),
    ]
    builder.feed(ToolCallMessage(tool_calls=announced))
    result = ToolResultMessage(
        tool_calls=[
            ToolCall(id="a", name="calculator", status="done", result=42),
            ToolCall(id="b", name="calculator", arguments={"expression": "2"}, status="done"),
        ]
    )
    builder.feed(result)
    a, b = builder.build().tool_calls
    assert (a.arguments, a.status, a.result) == ({"expression": "6*7"}, "done", 42)
    assert b.arguments == {"expression": "2"}
    assert result.tool_calls[0].arguments == {}  # the received message is left as it came


def test_error_completes_the_reply_with_the_error() -> None:
    """An error message ends the reply and is kept on it."""
    builder = ReplyBuilder()
    assert builder.feed(ErrorMessage(error=ErrorInfo(code="busy", message="later")))
    assert builder.build().error == ErrorInfo(code="busy", message="later")


def test_cancelled_done_marks_the_reply_cancelled() -> None:
    """``done`` with ``cancelled: true`` marks the reply as cancelled."""
    builder = ReplyBuilder()
    builder.feed(DoneMessage(cancelled=True))
    assert builder.build().cancelled


def test_text_read_while_streaming_is_consistent() -> None:
    """Reading the text mid-stream neither loses nor repeats tokens."""
    builder = ReplyBuilder()
    seen = []
    for i in range(100):
        builder.feed(TokenMessage(response=f"{i} "))
        seen.append(builder.text)
    assert seen[-1] == "".join(f"{i} " for i in range(100))
    assert all(b.startswith(a) for a, b in itertools.pairwise(seen))


def test_repr_is_short_and_free_of_ids() -> None:
    """A Reply's repr shows text and tool calls but no ids, so notebook outputs stay stable."""
    builder = ReplyBuilder("message-id-123", "conversation-456")
    builder.feed(ToolResultMessage(tool_calls=[ToolCall(id="t", name="calc", status="done")]))
    builder.feed(TokenMessage(response="42"))
    builder.feed(DoneMessage())
    text = repr(builder.build())
    assert text == "<Reply '42' tool_calls=[calc: done]>"


def test_messages_come_back_equal_to_what_was_fed() -> None:
    """Tokens kept compactly are rebuilt equal; tokens with extra fields are kept whole."""
    builder = ReplyBuilder("m", "c")
    fed: list[ServerMessage] = [
        TokenMessage(response="a", reply_to="m", conversation_id="c"),
        TokenMessage.model_validate(
            {"response": "b", "reply_to": "m", "conversation_id": "c", "x": 1}
        ),
        TokenMessage(response="c"),  # no ids: a server that sends none
        DoneMessage(reply_to="m", conversation_id="c"),
    ]
    for message in fed:
        builder.feed(message)
    assert builder.messages == fed
    assert builder.build().messages == fed
    assert builder.messages[1].model_extra == {"x": 1}


def test_repr_names_an_error_or_a_cancellation_and_cuts_long_text() -> None:
    """A failed or cancelled reply says so in its repr; text beyond 300 characters is cut."""
    failed = ReplyBuilder()
    failed.feed(ErrorMessage(error=ErrorInfo(code="busy", message="later")))
    assert repr(failed.build()) == "<Reply '' error='busy'>"
    cancelled = ReplyBuilder()
    cancelled.feed(TokenMessage(response="x" * 400))
    cancelled.feed(DoneMessage(cancelled=True))
    assert repr(cancelled.build()) == f"<Reply {'x' * 300 + '…'!r} cancelled>"
    assert str(cancelled.build()) == "x" * 400


def test_a_tool_call_is_found_by_id_at_its_latest_status() -> None:
    """``tool_call(id)`` gives the merged call, or None for an id never announced."""
    builder = ReplyBuilder()
    builder.feed(ToolCallMessage(tool_calls=[ToolCall(id="a", name="x", arguments={"n": 1})]))
    builder.feed(ToolResultMessage(tool_calls=[ToolCall(id="a", name="x", status="error")]))
    call = builder.tool_call("a")
    assert call is not None and (call.status, call.arguments) == ("error", {"n": 1})
    assert builder.tool_call("b") is None


def test_reasoning_is_joined_apart_from_the_text() -> None:
    """Reasoning pieces join into ``Reply.reasoning`` and never into the answer's text."""
    builder = ReplyBuilder("m", "c")
    builder.feed(ReasoningMessage(text="Let me "))
    builder.feed(ReasoningMessage(text="think."))
    builder.feed(TokenMessage(response="42"))
    builder.feed(DoneMessage())
    reply = builder.build()
    assert (reply.reasoning, reply.text) == ("Let me think.", "42")
    assert [type(m) for m in reply.messages] == [
        ReasoningMessage,
        ReasoningMessage,
        TokenMessage,
        DoneMessage,
    ]


def test_done_carries_usage_and_truncation_into_the_reply() -> None:
    """A ``done`` with usage and ``truncated`` gives the reply both; a plain one neither."""
    builder = ReplyBuilder()
    builder.feed(TokenMessage(response="cut mid"))
    builder.feed(DoneMessage(usage=Usage(prompt_tokens=12, completion_tokens=5), truncated=True))
    reply = builder.build()
    assert reply.usage == Usage(prompt_tokens=12, completion_tokens=5)
    assert reply.truncated and "truncated" in repr(reply)
    plain = ReplyBuilder()
    plain.feed(DoneMessage())
    assert plain.build().usage is None and not plain.build().truncated
