"""Tool calls rebuilt from streamed fragments, driven synchronously (no server, no model)."""

from __future__ import annotations

import pytest

from nbchat.server.openai.toolcalls import ToolCallAccumulator, chunk_delta

pytestmark = pytest.mark.unit


def test_accumulator_joins_fragments_by_index() -> None:
    """Id, name and argument pieces split across chunks make one call per index."""
    calls = ToolCallAccumulator()
    calls.add(0, "a", "calculator", "")
    calls.add(1, "b", "current_time", "{")
    calls.add(0, None, None, '{"expr')
    calls.add(0, None, None, 'ession": "6*7"}')
    calls.add(1, None, None, "}")
    assert [(c.id, c.name, c.arguments) for c in calls.calls] == [
        ("a", "calculator", '{"expression": "6*7"}'),
        ("b", "current_time", "{}"),
    ]


def test_accumulator_starts_a_new_call_when_an_index_comes_with_a_new_id() -> None:
    """Ollama reuses index 0 for a second call with its own id: two calls, not one."""
    calls = ToolCallAccumulator()
    calls.add(0, "first", "calculator", '{"expression": "1+1"}')
    calls.add(0, "second", "calculator", '{"expression": "2+2"}')
    calls.add(None, None, None, "")
    assert [c.id for c in calls.calls] == ["first", "second"]
    assert calls.calls[1].arguments == '{"expression": "2+2"}'


def test_accumulator_bounds_argument_text() -> None:
    """A call's argument text stops growing just past the bound, so it is refused, not kept."""
    calls = ToolCallAccumulator()
    for _ in range(30):
        calls.add(0, "a", "calculator", "x" * 10_000)
    assert 100_000 < len(calls.calls[0].arguments) <= 100_001


def test_malformed_fragments_are_skipped() -> None:
    """Fragments of the wrong JSON shape are passed over; what is well formed is kept."""
    calls = ToolCallAccumulator()
    calls.add_deltas([None, 3, {"index": "0"}, {"index": 0, "id": "a", "function": "x"}])
    calls.add_deltas({"not": "a list"})
    assert [(c.id, c.name, c.arguments) for c in calls.calls] == [("a", "", "")]


def test_chunk_delta_reads_only_a_well_formed_first_choice() -> None:
    """The delta of choices[0], or nothing for usage chunks and malformed ones."""
    assert chunk_delta({"choices": [{"delta": {"content": "hi"}}]}) == {"content": "hi"}
    for chunk in [None, {}, {"choices": []}, {"choices": ["x"]}, {"choices": [{"delta": 1}]}]:
        assert chunk_delta(chunk) == {}
