"""Turns from transcript lines: by the client's reply_to and restart events only, in one pass."""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from nbchat.protocol import (
    AckMessage,
    CancelRequest,
    DoneMessage,
    ErrorInfo,
    ReasoningMessage,
    TokenMessage,
    ToolCall,
    ToolResultMessage,
    UnknownMessage,
    Usage,
    UserMessage,
)
from nbchat.transcript import Recorder, Transcript, TranscriptLine
from nbchat.transcript.turns import build_turns

from .sessions import record_session, write_lines

pytestmark = pytest.mark.unit


def test_recorded_session_loads_into_turns(tmp_path: Path) -> None:
    """Tokens join into the answer, tool calls merge with their results, errors end a turn."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    transcript = Transcript.load(path)
    first, second = transcript.turns
    assert (first.user, first.message_id, first.conversation_id) == (
        "Weather in Paris?",
        "m1",
        "c1",
    )
    assert first.assistant == "Checking. It is 21 degrees."
    assert first.complete and first.error is None and first.ending == "complete"
    [call] = first.tool_calls
    assert (call.name, call.status, call.arguments, call.result) == (
        "weather",
        "done",
        {"city": "Paris"},
        {"temp": 21},
    )
    assert isinstance(first.messages[0], AckMessage)
    assert isinstance(first.messages[-1], DoneMessage)
    assert first.segments() == ["Checking. ", call, "It is 21 degrees."]
    assert second.assistant == "Let me"
    assert second.error == ErrorInfo(code="agent_failed", message="forecast service down")
    assert second.complete and second.ending == "error"


def test_turns_know_when_each_message_arrived(tmp_path: Path) -> None:
    """Turn.times gives the arrival time of each message, aligned with Turn.messages."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    first, second = Transcript.load(path).turns
    assert first.t == 1_700_000_002.0
    assert first.times == [1_700_000_000.0 + n for n in range(3, 11)]
    assert len(first.times) == len(first.messages)
    assert second.times == [1_700_000_012.0, 1_700_000_013.0, 1_700_000_014.0]


def test_resent_message_makes_one_turn(tmp_path: Path) -> None:
    """A message resent after a reconnect, and acked twice, is still one turn."""
    path = tmp_path / "chat.jsonl"
    message = UserMessage(id="m1", conversation_id="c", message="hello")
    with Recorder(path) as rec:
        rec.sent(message)
        rec.state("disconnected", "1006")
        rec.sent(message)
        rec.received(AckMessage(id="m1", reply_to="m1"))
        rec.received(AckMessage(id="m1", reply_to="m1", duplicate=True))
        rec.received(TokenMessage(response="hi", reply_to="m1"))
        rec.received(DoneMessage(reply_to="m1"))
    [turn] = Transcript.load(path).turns
    assert turn.assistant == "hi" and turn.complete
    assert [m.type for m in turn.messages] == ["ack", "ack", "token", "done"]


def test_interleaved_conversations_follow_reply_to(tmp_path: Path) -> None:
    """Two conversations answered in any order land in their own turns, as the client said."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="a1", conversation_id="a", message="first in a"))
        rec.sent(UserMessage(id="b1", conversation_id="b", message="first in b"))
        rec.received(TokenMessage(response="B1", conversation_id="b", reply_to="b1"))
        rec.received(TokenMessage(response="A1", conversation_id="a", reply_to="a1"))
        rec.received(DoneMessage(conversation_id="b", reply_to="b1"))
        rec.received(DoneMessage(conversation_id="a", reply_to="a1"))
    a, b = Transcript.load(path).turns
    assert [(a.user, a.assistant), (b.user, b.assistant)] == [
        ("first in a", "A1"),
        ("first in b", "B1"),
    ]


def test_a_line_without_reply_to_answers_no_turn(tmp_path: Path) -> None:
    """Turn building never routes again: a message the client tied to nothing stays untied."""
    path = tmp_path / "chat.jsonl"
    write_lines(
        path,
        {"t": 1, "dir": "out", "data": {"id": "m1", "message": "hi", "conversation_id": "a"}},
        {"t": 2, "dir": "in", "data": {"response": "stray", "conversation_id": "a"}},
        {"t": 3, "dir": "in", "data": {"response": "mine", "reply_to": "m1"}},
        {"t": 4, "dir": "in", "data": {"response": "unknown", "reply_to": "m9"}},
        {"t": 5, "dir": "in", "data": {"done": True, "reply_to": "m1"}},
    )
    [turn] = Transcript.load(path).turns
    assert (turn.assistant, turn.complete) == ("mine", True)


def test_server_assigned_conversation_is_adopted(tmp_path: Path) -> None:
    """A turn sent without a conversation takes the one the server answers with."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", message="hi"))
        rec.received(AckMessage(id="m1", conversation_id="srv-1", reply_to="m1"))
        rec.received(TokenMessage(response="hello", conversation_id="srv-1", reply_to="m1"))
        rec.received(DoneMessage(conversation_id="srv-1", reply_to="m1"))
        rec.sent(CancelRequest(conversation_id="srv-1"))
    [turn] = Transcript.load(path).turns
    assert (turn.conversation_id, turn.assistant, turn.complete) == ("srv-1", "hello", True)


def test_restart_voids_what_came_before_it(tmp_path: Path) -> None:
    """After the client's restart event, a turn holds only the regenerated reply."""
    path = tmp_path / "restart.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", conversation_id="c", message="count to 3"))
        rec.received(TokenMessage(response="1 ", reply_to="m1", conversation_id="c"))
        call = ToolCall(id="t1", name="count", status="done")
        rec.received(ToolResultMessage(tool_calls=[call], reply_to="m1"))
        rec.restarted("m1")
        for part in ["1 ", "2 ", "3"]:
            rec.received(TokenMessage(response=part, reply_to="m1", conversation_id="c"))
        rec.received(DoneMessage(reply_to="m1", conversation_id="c"))
    [turn] = Transcript.load(path).turns
    assert (turn.assistant, turn.tool_calls, len(turn.times)) == ("1 2 3", [], 4)


def test_older_transcripts_with_an_in_reply_restart_still_read(tmp_path: Path) -> None:
    """A restart stored the old way, as an ``in`` message of type reply_restart, voids too."""
    path = tmp_path / "restart.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", conversation_id="c", message="count to 2"))
        rec.received(TokenMessage(response="1 ", reply_to="m1", conversation_id="c"))
        rec.received(UnknownMessage(type="reply_restart", reply_to="m1", conversation_id="c"))
        for part in ["1 ", "2"]:
            rec.received(TokenMessage(response=part, reply_to="m1", conversation_id="c"))
    [turn] = Transcript.load(path).turns
    assert (turn.assistant, turn.complete) == ("1 2", False)


def _session(turns: int) -> list[TranscriptLine]:
    """``turns`` exchanges in two conversations, interleaved, with resends and acks."""
    lines: list[TranscriptLine] = []
    for n in range(turns):
        mid, conversation = f"m{n}", f"c{n % 2}"
        data = {"type": "message", "id": mid, "conversation_id": conversation, "message": "q"}
        lines.append(TranscriptLine(t=n, dir="out", data=data))
        lines.append(TranscriptLine(t=n, dir="out", data=data))  # resent
        lines.append(
            TranscriptLine(t=n, dir="in", data={"type": "ack", "id": mid, "reply_to": mid})
        )
        for word in range(5):
            token = {"type": "token", "response": f"w{word} ", "reply_to": mid}
            lines.append(TranscriptLine(t=n, dir="in", data=token))
        if n % 3 == 0:
            lines.append(
                TranscriptLine(t=n, dir="client", data={"event": "restart", "reply_to": mid})
            )
        lines.append(TranscriptLine(t=n, dir="in", data={"type": "done", "reply_to": mid}))
    return lines


def _python_lines_run(lines: list[TranscriptLine]) -> int:
    """How many Python lines building the turns executes: a deterministic measure of its work."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()  # coverage's tracer, when measuring: put back afterwards
    sys.settrace(tracer)
    try:
        build_turns(lines)
    finally:
        sys.settrace(previous)
    return count


def test_turn_building_is_one_linear_pass() -> None:
    """Twice the lines cost exactly twice the work (plus a constant), not more."""
    small, large = _session(300), _session(600)
    assert len(build_turns(large)) == 600
    cost_small, cost_large = _python_lines_run(small), _python_lines_run(large)
    assert cost_large > cost_small > 0
    # Linear: cost(2n) = 2 cost(n) - constant. Anything that rescans earlier turns per
    # line (n^2) adds about cost(n) again, far beyond this 1% allowance.
    assert abs(cost_large - 2 * cost_small) <= 0.01 * cost_large, (cost_small, cost_large)


def test_a_transcript_with_a_secret_split_across_lines_is_redacted_when_read(
    tmp_path: Path,
) -> None:
    """An old transcript with a split secret loses it in turns, exports and saves."""
    path = tmp_path / "old.jsonl"
    parts = ["Use https://ada:s3", "cret-pw@host and Bearer ", "Zq8Zq8Zq8Zq8", "Zq8Zq8Zq8 ok"]
    write_lines(
        path,
        {"t": 1, "dir": "out", "data": {"type": "message", "id": "m1", "message": "how?"}},
        *(
            {"t": 2 + n, "dir": "in", "data": {"type": "token", "response": p, "reply_to": "m1"}}
            for n, p in enumerate(parts)
        ),
        {"t": 9, "dir": "in", "data": {"type": "done", "reply_to": "m1"}},
    )
    transcript = Transcript.load(path)
    [turn] = transcript.turns
    assert turn.assistant == "Use https://***:***@host and Bearer *** ok"
    assert [m.response for m in turn.messages if isinstance(m, TokenMessage)][-1] == " ok"
    exports = [transcript.to_markdown(), transcript.to_text(), transcript.to_json()]
    exports.append(str(transcript.to_notebook()))
    transcript.save(tmp_path / "saved.jsonl")
    exports.append((tmp_path / "saved.jsonl").read_text(encoding="utf-8"))
    for export in exports:
        assert "cret-pw" not in export and "Zq8Zq8" not in export


def test_reasoning_usage_and_the_cut_are_recorded_and_loaded(tmp_path: Path) -> None:
    """A recorded reply's reasoning, usage and truncation come back in its turn."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path, "ws://127.0.0.1:1/ws") as rec:
        rec.sent(UserMessage(id="m1", conversation_id="c1", message="story?"))
        rec.received(ReasoningMessage(text="Plan: ", reply_to="m1", conversation_id="c1"))
        rec.received(ReasoningMessage(text="short.", reply_to="m1", conversation_id="c1"))
        rec.received(TokenMessage(response="Once", reply_to="m1", conversation_id="c1"))
        usage = Usage(prompt_tokens=5, completion_tokens=1)
        done = DoneMessage(usage=usage, truncated=True, reply_to="m1", conversation_id="c1")
        rec.received(done)
    (turn,) = Transcript.load(path).turns
    assert (turn.reasoning, turn.assistant) == ("Plan: short.", "Once")
    assert turn.usage == usage and turn.truncated and turn.note == "cut at the token limit"
