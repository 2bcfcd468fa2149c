"""``<think>…</think>`` spans in a model's streamed text, told apart from its answer (pure).

Reasoning models served without a reasoning parser (llama.cpp, Ollama and vLLM
by default, for DeepSeek-R1, Qwen3, QwQ) write their thinking into the text,
between ``<think>`` and ``</think>``; some chat templates open the tag in the
prompt, so the text starts inside the span and only ``</think>`` is seen. A
stream may cut a tag anywhere (``"<thi"`` then ``"nk>"``): :class:`ThinkSplitter`
holds back at most a tag's length less one character that could still begin a
tag, so every character is looked at a bounded number of times (linear in the
text). The blank line a model writes after ``</think>`` is dropped from the answer.
"""

from __future__ import annotations

__all__ = ["CLOSE", "OPEN", "ThinkSplitter"]

OPEN = "<think>"
CLOSE = "</think>"

Piece = tuple[bool, str]
"""A run of text and whether it is reasoning (True) or answer (False)."""


class ThinkSplitter:
    """Feed text as it streams; get runs of answer and of reasoning, in order."""

    def __init__(self) -> None:
        self.thinking = False
        """Inside a ``<think>`` span now."""
        self._held = ""
        """The end of the text fed so far that could be the start of the next tag."""
        self._after_close = False
        """A span just closed: whitespace before the answer is dropped."""

    def feed(self, text: str) -> list[Piece]:
        """Split ``text`` (the next piece of the stream); what may begin a tag is held back."""
        text = self._held + text
        self._held = ""
        pieces: list[Piece] = []
        start = 0
        while True:
            tag = CLOSE if self.thinking else OPEN
            found = text.find(tag, start)
            if found < 0:
                break
            self._emit(pieces, text[start:found])
            start = found + len(tag)
            self._after_close = self.thinking
            self.thinking = not self.thinking
        tail = text[start:]
        keep = _partial_tag(tail, CLOSE if self.thinking else OPEN)
        self._held = tail[len(tail) - keep :] if keep else ""
        self._emit(pieces, tail[: len(tail) - keep])
        return pieces

    def flush(self) -> list[Piece]:
        """The end of the stream: what was held back is text after all."""
        held, self._held = self._held, ""
        pieces: list[Piece] = []
        self._emit(pieces, held)
        return pieces

    # Private methods

    def _emit(self, pieces: list[Piece], text: str) -> None:
        if self._after_close and not self.thinking:
            text = text.lstrip()
            if not text:
                return
            self._after_close = False
        if text:
            pieces.append((self.thinking, text))


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` are the start of ``tag`` (0 if none)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
