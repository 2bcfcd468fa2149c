"""JsonProtocol's translation, driven synchronously: both shapes of tests/client/json_backends."""

from __future__ import annotations

import json

import pytest

from nbchat import JsonProtocol, ProtocolError
from nbchat.protocol import (
    DoneMessage,
    ErrorMessage,
    TokenMessage,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
    dump,
)
from tests.client.json_backends import EVENTS, SESSIONS

pytestmark = pytest.mark.unit


def message(text: str = "hi", conversation: str = "c1") -> str:
    """A v1 user message frame, as the session queues it."""
    return dump(UserMessage(id="m1", conversation_id=conversation, message=text))


def test_a_user_message_is_built_in_the_backends_shape_with_its_constants() -> None:
    """Text and conversation go where declared; constant fields are added."""
    codec = EVENTS.codec()
    assert json.loads(codec.encode(message()) or "") == {
        "prompt": "hi",
        "thread": "c1",
        "model": "tiny",
    }


def test_nothing_but_user_messages_is_ever_encoded() -> None:
    """A cancel, a tools declaration or a tool response is never sent to such a backend."""
    codec = SESSIONS.codec()
    for frame in (
        '{"type":"cancel","conversation_id":"c1"}',
        '{"type":"tools","tools":[]}',
        '{"type":"tool_response","id":"t1","result":1}',
    ):
        assert codec.encode(frame) is None


def test_the_session_id_the_backend_issues_is_echoed_back() -> None:
    """None before the backend issued one, its id after; the session frame shows nothing."""
    codec = SESSIONS.codec()
    assert json.loads(codec.encode(message()) or "")["session_id"] is None
    assert codec.decode('{"type":"session_created","session_id":"abc"}') == []
    assert json.loads(codec.encode(message()) or "")["session_id"] == "abc"


def test_incoming_frames_become_v1_messages_without_reply_to() -> None:
    """Deltas, a whole tool call, its result, the end: v1 messages the session routes by age."""
    codec = EVENTS.codec()
    frames = [
        {"event": "tool", "call": {"id": "c1", "name": "add", "args": {"a": 1}}},
        {"event": "tool_output", "id": "c1", "output": 2},
        {"event": "delta", "text": "two"},
        {"event": "end"},
    ]
    out = [m for frame in frames for m in codec.decode(json.dumps(frame))]
    assert [type(m) for m in out] == [ToolCallMessage, ToolResultMessage, TokenMessage, DoneMessage]
    assert all(m.reply_to is None for m in out)
    assert isinstance(out[1], ToolResultMessage)
    (call,) = out[1].tool_calls
    assert (call.name, call.arguments, call.status, call.result) == ("add", {"a": 1}, "done", 2)


def test_streamed_arguments_are_joined_and_a_failed_tool_is_an_error_card() -> None:
    """A start, JSON pieces and the result flagged as an error: one error card, whole arguments."""
    codec = SESSIONS.codec()
    start = {"type": "tool_call_delta", "tool_call": {"id": "t", "name": "f", "input": None}}
    (card,) = codec.decode(json.dumps(start))
    assert isinstance(card, ToolCallMessage) and card.tool_calls[0].status == "running"
    for piece in ('{"x": ', "1}"):
        part = {"type": "tool_call_delta", "tool_call": {"id": "t", "input_json": piece}}
        assert codec.decode(json.dumps(part)) == []
    result = {"type": "tool_result", "tool_call_id": "t", "result": "boom", "error": True}
    (done,) = codec.decode(json.dumps(result))
    assert isinstance(done, ToolResultMessage)
    assert (done.tool_calls[0].arguments, done.tool_calls[0].status) == ({"x": 1}, "error")


def test_start_arguments_and_end_frames_make_one_card() -> None:
    """Three kinds of frame (start, argument pieces, end) declared apart: the end shows them."""
    protocol = JsonProtocol(
        tool_call={
            "start": {"id": "cid", "name": "tool"},
            "args": {"id": "cid", "name": None, "arguments_delta": "delta"},
        },
        tool_end={"stop": "cid"},
    )
    codec = protocol.codec()
    codec.decode('{"type":"start","cid":"1","tool":"search"}')
    codec.decode('{"type":"args","cid":"1","delta":"{\\"q\\": \\"x\\"}"}')
    (card,) = codec.decode('{"type":"stop","cid":"1"}')
    assert isinstance(card, ToolCallMessage) and card.tool_calls[0].arguments == {"q": "x"}


def test_an_error_frame_names_its_message() -> None:
    """The declared field of an error frame is the error's message."""
    (error,) = EVENTS.codec().decode('{"event":"failure","detail":"asleep"}')
    assert isinstance(error, ErrorMessage) and error.error.message == "asleep"


@pytest.mark.parametrize(
    "raw",
    [
        '{"event":"surprise"}',
        '{"no_event":1}',
        "not json",
        '{"event":"delta"}',
        '{"event":"tool_output"}',
    ],
)
def test_a_frame_the_protocol_does_not_describe_is_a_protocol_error_with_the_raw_frame(
    raw: str,
) -> None:
    """An unknown kind, no kind, invalid JSON, a described kind missing its field: refused."""
    with pytest.raises(ProtocolError) as caught:
        EVENTS.codec().decode(raw)
    assert caught.value.raw == raw and "\n" not in str(caught.value)


def test_a_protocol_is_a_declaration_that_refuses_unknown_settings() -> None:
    """A misspelt setting is an error at once, not a protocol that silently ignores it."""
    with pytest.raises(ValueError, match="txt"):
        JsonProtocol(txt={"delta": "text"})  # type: ignore[call-arg]
