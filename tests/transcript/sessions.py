"""Recorded sessions shared by the transcript tests: real protocol models, a predictable clock."""

from __future__ import annotations

import json
from pathlib import Path

from nbchat.protocol import (
    AckMessage,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
)
from nbchat.transcript import TRANSCRIPT_VERSION, Recorder

URL = "ws://ada:s3cret@localhost:8000/ws?token=abc123&room=7"
"""A server address carrying a password and a token, neither of which may reach a file."""


class Clock:
    """A clock that ticks one second per reading, so event times are predictable."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def record_session(path: Path) -> None:
    """Record two turns (one with a tool call between two texts, one failing)."""
    with Recorder(path, URL, clock=Clock()) as rec:
        rec.state("connected", "localhost:8000")
        rec.sent(UserMessage(id="m1", conversation_id="c1", message="Weather in Paris?"))
        rec.received(AckMessage(id="m1", reply_to="m1", conversation_id="c1"))
        rec.received(TokenMessage(response="Checking. ", reply_to="m1", conversation_id="c1"))
        call = ToolCall(id="t1", name="weather", arguments={"city": "Paris"})
        rec.received(ToolCallMessage(tool_calls=[call], reply_to="m1", conversation_id="c1"))
        finished = call.model_copy(update={"status": "done", "result": {"temp": 21}})
        rec.received(ToolResultMessage(tool_calls=[finished], reply_to="m1", conversation_id="c1"))
        for part in ["It is ", "21 degrees", "."]:
            rec.received(TokenMessage(response=part, reply_to="m1", conversation_id="c1"))
        rec.received(DoneMessage(reply_to="m1", conversation_id="c1"))
        rec.sent(UserMessage(id="m2", conversation_id="c1", message="And tomorrow?"))
        rec.received(AckMessage(id="m2", reply_to="m2", conversation_id="c1"))
        rec.received(TokenMessage(response="Let me", reply_to="m2", conversation_id="c1"))
        error = ErrorInfo(code="agent_failed", message="forecast service down")
        rec.received(ErrorMessage(error=error, reply_to="m2", conversation_id="c1"))
        rec.error("frame is not JSON", b"{oops")


def write_lines(path: Path, *objects: object) -> None:
    """Write a header and ``objects`` as JSON Lines, as another client might have."""
    header = {"nbchat_transcript": TRANSCRIPT_VERSION, "created": None, "url": None}
    lines = [json.dumps(header)] + [json.dumps(obj) for obj in objects]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
