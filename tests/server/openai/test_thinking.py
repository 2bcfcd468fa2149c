"""``<think>`` spans told apart from the answer, whatever the stream's cuts (pure)."""

from __future__ import annotations

import pytest

from nbchat.server.openai.thinking import ThinkSplitter

pytestmark = pytest.mark.unit

TEXT = "<think>Two and two.\nFour.</think>\n\nIt is 4 <b>."


def _split(pieces: list[str]) -> tuple[str, str]:
    """The reasoning and the answer of a stream cut into ``pieces``."""
    splitter = ThinkSplitter()
    runs = [run for piece in pieces for run in splitter.feed(piece)] + splitter.flush()
    reasoning = "".join(text for thinking, text in runs if thinking)
    answer = "".join(text for thinking, text in runs if not thinking)
    return reasoning, answer


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 100])
def test_tags_cut_anywhere_split_the_same(size: int) -> None:
    """However the stream is cut, even inside a tag, the reasoning and the answer are the same."""
    pieces = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    assert _split(pieces) == ("Two and two.\nFour.", "It is 4 <b>.")


def test_a_span_opened_by_the_prompt_and_a_lone_angle_bracket() -> None:
    """Text before a lone ``</think>`` is answer; a ``<`` that starts no tag is kept as text."""
    splitter = ThinkSplitter()
    splitter.thinking = True  # the chat template opened the span
    runs = splitter.feed("hmm</think>ok <") + splitter.flush()
    assert runs == [(True, "hmm"), (False, "ok "), (False, "<")]
    assert _split(["a < b <thin", "king"]) == ("", "a < b <thinking")
