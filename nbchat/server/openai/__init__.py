"""The bridge to any OpenAI-compatible model: ``OpenAIAgent`` (``bridge.py``), tool calls
rebuilt from streamed fragments (``toolcalls.py``), and the SDK's errors as protocol errors
(``upstream.py``). Importing it loads the ``openai`` SDK only when an agent is made."""

from __future__ import annotations

from .bridge import OpenAIAgent

__all__ = ["OpenAIAgent"]
