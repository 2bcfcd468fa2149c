"""The one tool executor: every way a call ends is an outcome, never an exception."""

from __future__ import annotations

import asyncio
import threading

import pytest

from nbchat.tools import execute
from nbchat.toolspec import ToolSpec, tool_spec

pytestmark = pytest.mark.unit


def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


def fails(text: str) -> str:
    """Always raises."""
    raise ValueError(f"no {text}\nsecond line")


def which_thread() -> str:
    """The name of the thread running the tool."""
    return threading.current_thread().name


async def slow() -> str:
    """Never finishes in time."""
    await asyncio.Event().wait()
    return "never"


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec for spec in map(tool_spec, (add, fails, which_thread, slow))
}


async def test_a_valid_call_runs_and_its_result_is_serialized() -> None:
    """Arguments as JSON text or a mapping are validated, the function runs, the result is JSON."""
    from_text = await execute(TOOLS, "add", '{"a": 2, "b": 3}')
    from_mapping = await execute(TOOLS, "add", {"a": 2})
    assert (from_text.status, from_text.result, from_text.text) == ("done", 5, "5")
    assert (from_mapping.status, from_mapping.result) == ("done", 3)


async def test_a_plain_function_runs_off_the_event_loop() -> None:
    """A function that may block runs in a worker thread, not the loop's."""
    outcome = await execute(TOOLS, "which_thread", None)
    assert outcome.status == "done" and outcome.result != threading.current_thread().name


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("nope", "{}", "unknown server tool 'nope' (this server offers: add, fails, slow,"),
        ("add", '{"a": ', "not valid JSON"),
        ("add", '{"a": "x"}', "bad arguments for add: a:"),
        ("fails", '{"text": "table"}', "ValueError: no table second line"),
    ],
)
async def test_every_failure_is_an_error_outcome(name: str, arguments: str, says: str) -> None:
    """Unknown names, broken or wrong arguments and raising tools end as one-line errors."""
    outcome = await execute(TOOLS, name, arguments, side="server")
    assert outcome.status == "error" and says in outcome.result
    assert outcome.text == f"error: {outcome.result}" and "\n" not in outcome.text


async def test_a_time_limit_ends_a_call_that_does_not_finish() -> None:
    """Past ``timeout`` the call is stopped and says how long it was given."""
    outcome = await execute(TOOLS, "slow", {}, timeout=0.01)
    assert (outcome.status, outcome.result) == ("error", "slow did not finish within 0.01s")


async def test_a_refusal_stops_the_call_before_it_runs() -> None:
    """``approve`` sees the valid call's tool; a reason it returns is the error, nothing runs."""
    asked: list[str] = []

    async def refuse(spec: ToolSpec) -> str:
        asked.append(spec.name)
        return "denied"

    refused = await execute(TOOLS, "fails", {"text": "x"}, approve=refuse)
    invalid = await execute(TOOLS, "fails", {}, approve=refuse)
    assert (refused.status, refused.result) == ("error", "denied")
    assert invalid.status == "error" and asked == ["fails"]
