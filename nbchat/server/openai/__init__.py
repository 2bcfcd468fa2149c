"""The bridge to any OpenAI-compatible model: ``OpenAIAgent`` and its rounds (``bridge.py``),
one streamed completion (``completion.py``), tool call fragments rebuilt by index
(``toolcalls.py``), a round's tool calls run (``calls.py``), each conversation's bounded
history (``history.py``), and the SDK's errors as protocol errors (``upstream.py``).
Importing it loads the ``openai`` SDK only when an agent is made."""

from __future__ import annotations

from .bridge import OpenAIAgent

__all__ = ["OpenAIAgent"]
