"""The static conversation: what a saved notebook shows of a panel where no kernel runs.

A widget's view needs a kernel (or saved widget state and a CDN); JupyterLab
before running, ``nbconvert --to html``, nbviewer and GitHub show only plain
outputs. So a panel's cell carries a second output: the conversation as
sanitized HTML (its stylesheet inline, no script, nothing fetched) and as text,
marked with :data:`~nbchat.nbval_displays.STATIC_METADATA` and kept current
with display updates, which JupyterLab saves. While the live panel is on the
page, the panel's stylesheet hides it (``chat.css``: an output following a live
panel). ``docs/architecture.md`` ("Saved notebooks") says why this design and
how strict nbval checks it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

from ..render.export import text_frame, turn_text
from ..render.html import conversation_frame, saved_turn_html
from ..testing.displays import STATIC_METADATA
from ..turn import Turn

__all__ = ["EMPTY_TEXT", "Exchange", "StaticConversation", "static_bundle"]

EMPTY_TEXT = "nbchat ChatWidget: no messages yet"

_NO_MATH = "tex2jax_ignore mathjax_ignore"
"""The classes MathJax skips an element's subtree for."""


def static_bundle(turns: Iterable[Turn]) -> dict[str, str]:
    """The conversation as ``text/html`` (sanitized, styled inline) and ``text/plain``.

    Deterministic for the same turns (no ids, times or ports), so a replayed
    notebook produces the file's bytes again. Redacted as every export is (the
    renderers redact each turn whole). Marked for MathJax to skip, or JupyterLab
    typesets model text when it reopens the file ("$5 and $10" loses its dollars):
    ``mathjax_ignore`` for its MathJax 3+, ``tex2jax_ignore`` for MathJax 2 and nbconvert.
    """
    return _bundle([_pieces(turn) for turn in turns])


def _pieces(turn: Turn) -> tuple[str, str]:
    """One turn's part of each representation: its HTML and its text."""
    return saved_turn_html(turn), turn_text(turn)


def _bundle(pieces: list[tuple[str, str]]) -> dict[str, str]:
    body = conversation_frame(html for html, _ in pieces) if pieces else ""
    empty = "" if pieces else f'<p class="nbchat-note">{EMPTY_TEXT}</p>'
    return {
        "text/html": f'<div class="nbchat-static {_NO_MATH}">{body}{empty}</div>',
        "text/plain": text_frame(text for _, text in pieces) or EMPTY_TEXT,
    }


class Exchange(Protocol):
    """What the static copy reads of a panel's turn view."""

    @property
    def turn(self) -> Turn: ...

    @property
    def done(self) -> bool: ...


class StaticConversation:
    """The static outputs of one panel: one display id, so every copy is updated together.

    Showing the panel again adds an output with the same id, which JupyterLab
    (and nbchat's nbval hooks) update along with the earlier ones.
    """

    def __init__(self) -> None:
        self.display_id: str | None = None
        """Set once the panel was displayed (so there are outputs to keep current)."""
        self._finished: dict[Exchange, tuple[str, str]] = {}
        """The pieces of each finished turn, which never change again: an update renders
        only the turns still open, so a reply costs the kernel what it added."""

    def display(self, exchanges: Iterable[Exchange]) -> None:
        """Add a static output after the panel's own, in the cell being run."""
        from IPython.display import display

        if self.display_id is None:
            self.display_id = uuid.uuid4().hex
        display(self.bundle(exchanges), raw=True, metadata=_metadata(), display_id=self.display_id)

    def update(self, exchanges: Iterable[Exchange]) -> None:
        """Replace every static output of the panel with the conversation as it is now.

        The metadata travels with each update: an update replaces the saved
        metadata, and an unmarked output is no longer recognised as static.
        """
        if self.display_id is None:
            return
        from IPython.display import update_display

        update_display(
            self.bundle(exchanges), raw=True, metadata=_metadata(), display_id=self.display_id
        )

    def bundle(self, exchanges: Iterable[Exchange]) -> dict[str, str]:
        """:func:`static_bundle` of the exchanges' turns, finished turns rendered once."""
        finished: dict[Exchange, tuple[str, str]] = {}
        pieces: list[tuple[str, str]] = []
        for exchange in exchanges:
            piece = self._finished.get(exchange)
            if piece is None:
                done = exchange.done  # read first: a turn that ends meanwhile is redone
                piece = _pieces(exchange.turn)
                if done:
                    finished[exchange] = piece
            else:
                finished[exchange] = piece
            pieces.append(piece)
        self._finished = finished  # a turn no longer shown (Clear) is forgotten
        return _bundle(pieces)


def _metadata() -> dict[str, dict[str, bool]]:
    return {key: dict(value) for key, value in STATIC_METADATA.items()}
