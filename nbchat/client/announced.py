"""What a server's handshake response says about it: the extensions it speaks, what answers.

A server announces both in headers of its opening handshake (``Nbchat-Features``,
``Nbchat-Backend``; docs/protocol.md). Read here, once, into a value the
connection hands the session (what may be sent) and the panel (what to show).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..protocol import BACKEND_HEADER, FEATURES_HEADER

__all__ = ["MAX_BACKEND_CHARS", "Announced"]

MAX_BACKEND_CHARS = 120
"""A server's description of itself is shown, not trusted: one line, at most this long."""


@dataclass(frozen=True)
class Announced:
    """The extensions a server announced and its word on what answers."""

    features: frozenset[str] = frozenset()
    backend: str | None = None

    @classmethod
    def read(cls, headers: Mapping[str, str], *, speaks_v1: bool = True) -> Announced:
        """From a handshake response's headers; a backend that speaks no v1 announces nothing."""
        if not speaks_v1:
            return cls()
        features = frozenset(f.strip() for f in headers.get(FEATURES_HEADER, "").split(","))
        text = " ".join((headers.get(BACKEND_HEADER) or "").split())
        if len(text) > MAX_BACKEND_CHARS:
            text = text[: MAX_BACKEND_CHARS - 1] + "…"
        return cls(features - {""}, text or None)
