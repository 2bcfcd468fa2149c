"""What a reply cost, as AG-UI's RUN_FINISHED and the AI SDK's message metadata report it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nbchat import agui, aisdk
from nbchat.protocol import ClientToolInfo, DoneMessage, ToolResponse, Usage, UserMessage
from nbchat.render.html import agent_state_html

pytestmark = pytest.mark.unit

SHOUT = ClientToolInfo(name="shout", description="Shout.", parameters={"type": "object"})


def finished(usage: list[dict[str, Any]] | None = None) -> Any:
    event: dict[str, Any] = {"type": "RUN_FINISHED", "threadId": "c", "runId": "r"}
    if usage is not None:
        event["usage"] = usage
    return agui.decode_event(json.dumps(event))


def test_run_finished_usage_is_summed_over_models_and_the_replys_runs() -> None:
    """Entries per provider and model add up; a follow-up run adds its own to the reply's."""
    threads = agui.Threads()
    _, run = threads.start(UserMessage(id="m", conversation_id="c", message="hi"), [SHOUT])
    for raw in (
        {"type": "TOOL_CALL_START", "toolCallId": "k", "toolCallName": "shout"},
        {"type": "TOOL_CALL_END", "toolCallId": "k"},
    ):
        run.feed(agui.decode_event(json.dumps(raw)))
    two_models = [
        {"provider": "a", "model": "x", "inputTokens": 10, "outputTokens": 2},
        {"provider": "b", "model": "y", "inputTokens": 5},
    ]
    assert run.feed(finished(two_models)) == []  # pending calls: no done yet
    _, _, follow = threads.follow_up(run, [ToolResponse(id="k", result="HI")], [SHOUT])
    (done,) = follow.feed(finished([{"inputTokens": 20, "outputTokens": 3}]))
    assert isinstance(done, DoneMessage)
    assert done.usage == Usage(prompt_tokens=35, completion_tokens=5)


def test_a_run_finished_without_usage_says_nothing_of_it() -> None:
    """No usage on RUN_FINISHED (an agent before AG-UI 1.0): done carries none."""
    _, run = agui.Threads().start(UserMessage(id="m", conversation_id="c", message="x"), [])
    (done,) = run.feed(finished())
    assert isinstance(done, DoneMessage) and done.usage is None and not done.says


@pytest.mark.parametrize(
    "parts",
    [
        [
            {
                "type": "finish",
                "messageMetadata": {"totalUsage": {"inputTokens": 7, "outputTokens": 2}},
            }
        ],
        [
            {
                "type": "message-metadata",
                "messageMetadata": {"usage": {"promptTokens": 7, "completionTokens": 2}},
            },
            {"type": "finish"},
        ],
    ],
)
def test_ai_sdk_usage_comes_from_the_message_metadata(parts: list[dict[str, Any]]) -> None:
    """totalUsage or usage in messageMetadata, on finish or its own part, in either SDK's names."""
    _, run = aisdk.Chats().start(UserMessage(id="m", conversation_id="c", message="x"), [])
    out = [m for part in parts for m in run.feed(aisdk.decode_part(json.dumps(part)))]
    (done,) = out
    assert isinstance(done, DoneMessage)
    assert done.usage == Usage(prompt_tokens=7, completion_tokens=2)


def test_ai_sdk_metadata_without_usage_leaves_it_unknown() -> None:
    """Metadata with no counts (pydantic-ai's timestamp), or counts that are no numbers: None."""
    assert aisdk.usage_of({"pydantic_ai": {"timestamp": "2026-01-01T00:00:00Z"}}) is None
    assert aisdk.usage_of({"usage": {"inputTokens": "7", "outputTokens": True}}) is None
    assert aisdk.usage_of(None) is None


def test_the_agent_state_block_is_escaped_redacted_and_collapsed() -> None:
    """Untrusted state: markup escaped, a bearer token redacted, folded unless asked open."""
    shown = agent_state_html({"note": "<script>x</script>", "auth": "Bearer abcdefghijklmnop123"})
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert "abcdefghijklmnop123" not in shown
    assert shown.startswith('<details class="nbchat-agent-state">')
    assert '<details class="nbchat-agent-state" open>' in agent_state_html({}, expanded=True)
