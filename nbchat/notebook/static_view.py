"""The static conversation: what a saved notebook shows of a panel where no kernel runs.

A widget's view needs a kernel (or saved widget state and a CDN); JupyterLab
before running, ``nbconvert --to html``, nbviewer and GitHub show only plain
outputs. So a panel's cell carries more outputs: the conversation as
sanitized HTML (its stylesheet inline, no script, nothing fetched) and as text,
marked with :data:`~nbchat.nbval_displays.STATIC_METADATA` and kept current
with display updates, which JupyterLab saves. While the live panel is on the
page, the panel's stylesheet hides them (``chat.css``: outputs following a live
panel). The copy is split over :data:`SLOTS` outputs so that an update costs what
the reply added (:class:`StaticConversation`). ``docs/architecture.md`` ("Saved
notebooks") says why this design and how strict nbval checks it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

from ..render.export import text_frame, turn_text
from ..render.html import conversation_frame, saved_turn_html
from ..testing.displays import STATIC_METADATA
from ..turn import Turn

__all__ = ["EMPTY_TEXT", "SLOTS", "SLOT_CHARS", "Exchange", "StaticConversation", "static_bundle"]

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


def _bundle(pieces: list[tuple[str, str]], *, first: bool = True) -> dict[str, str]:
    """The outputs' bundle for these pieces; ``first``: the copy's first output, which carries
    the stylesheet and says so when the conversation is empty (a later one is then blank)."""
    if not pieces and not first:
        return {"text/html": f'<div class="nbchat-static {_NO_MATH}"></div>', "text/plain": ""}
    body = conversation_frame((html for html, _ in pieces), styles=first) if pieces else ""
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


SLOTS = 16
"""Outputs a panel's static copy is split over, made when the panel is displayed."""

SLOT_CHARS = 32_000
"""An output holding this many characters of finished turns takes no more: the next turns go
to the next one, so an update re-sends one output of at most about this size (the last
output takes whatever comes after :data:`SLOTS` of them)."""


class StaticConversation:
    """The static outputs of one panel, :data:`SLOTS` of them, each with its display id.

    Jupyter has no message that appends to an output of a cell that has
    finished, and a display update replaces its output whole. So the copy is
    split over outputs made at display time (the later ones blank until
    needed): the turns fill them in order, an output closes once it holds
    :data:`SLOT_CHARS` characters of finished turns, and an update re-sends only
    the outputs whose turns changed, so a reply costs what it added, not the
    whole conversation. Showing the panel again adds outputs with the same ids,
    which JupyterLab (and nbchat's nbval hooks) update along with the earlier ones.
    """

    def __init__(self) -> None:
        self.display_ids: list[str] = []
        """One per output, made once the panel was displayed (so there are outputs to keep
        current)."""
        self._finished: dict[Exchange, tuple[str, str]] = {}
        """The pieces of each finished turn, which never change again: an update renders
        only the turns still open."""
        self._slots: list[list[Exchange]] = [[]]
        """The turns each output shows, in order; the last one still takes new turns."""
        self._placed: list[Exchange] = []
        """Every turn of :attr:`_slots`, in order."""
        self._sent: list[tuple[tuple[int, bool], ...] | None] = [None] * SLOTS
        """What each output showed when last sent: its turns, and which were finished."""

    def display(self, exchanges: Iterable[Exchange]) -> None:
        """Add the static outputs after the panel's own, in the cell being run."""
        from IPython.display import display

        if not self.display_ids:
            self.display_ids = [uuid.uuid4().hex for _ in range(SLOTS)]
        changed = dict(self.changed(exchanges, everything=True))
        for number, display_id in enumerate(self.display_ids):
            display(changed[number], raw=True, metadata=_metadata(), display_id=display_id)

    def update(self, exchanges: Iterable[Exchange]) -> None:
        """Bring every static output of the panel up to date, sending only those that changed.

        The metadata travels with each update: an update replaces the saved
        metadata, and an unmarked output is no longer recognised as static.
        """
        if not self.display_ids:
            return
        from IPython.display import update_display

        for number, bundle in self.changed(exchanges):
            update_display(
                bundle, raw=True, metadata=_metadata(), display_id=self.display_ids[number]
            )

    def changed(
        self, exchanges: Iterable[Exchange], *, everything: bool = False
    ) -> list[tuple[int, dict[str, str]]]:
        """The outputs to send now, by number, and their bundles: those whose turns changed
        since they were last sent (``everything``: all of them)."""
        shown = list(exchanges)
        placed = self._placed
        if len(shown) < len(placed) or (placed and shown[len(placed) - 1] is not placed[-1]):
            self._slots, self._placed = [[]], []  # cleared: placed again from the first output
            keep = set(shown)
            self._finished = {e: p for e, p in self._finished.items() if e in keep}
            everything = True
        first = 0 if everything else len(self._slots) - 1  # the others are closed, and sent
        for exchange in shown[len(self._placed) :]:
            tail = self._slots[-1]
            if len(self._slots) < SLOTS and tail and self._closes(tail):
                self._slots.append(tail := [])
            tail.append(exchange)
            self._placed.append(exchange)
        sent: list[tuple[int, dict[str, str]]] = []
        for number in range(first, SLOTS if everything else len(self._slots)):
            slot = self._slots[number] if number < len(self._slots) else []
            state = tuple((id(exchange), exchange in self._finished) for exchange in slot)
            if everything or state != self._sent[number] or not all(done for _, done in state):
                pieces = [self._piece(exchange) for exchange in slot]
                self._sent[number] = tuple((id(e), e in self._finished) for e in slot)
                sent.append((number, _bundle(pieces, first=number == 0)))
        return sent

    def bundle(self, exchanges: Iterable[Exchange]) -> dict[str, str]:
        """The whole conversation as one bundle (what the outputs show together), finished
        turns rendered once: :func:`static_bundle` of the exchanges' turns."""
        return _bundle([self._piece(exchange) for exchange in exchanges])

    def _piece(self, exchange: Exchange) -> tuple[str, str]:
        piece = self._finished.get(exchange)
        if piece is None:
            done = exchange.done  # read first: a turn that ends meanwhile is redone
            piece = _pieces(exchange.turn)
            if done:
                self._finished[exchange] = piece
        return piece

    def _closes(self, slot: list[Exchange]) -> bool:
        """Whether an output takes no more turns: all finished, and it holds enough."""
        if not all(exchange in self._finished or exchange.done for exchange in slot):
            return False  # an open turn is never rendered here: the update renders it
        return sum(len(self._piece(exchange)[0]) for exchange in slot) >= SLOT_CHARS


def _metadata() -> dict[str, dict[str, bool]]:
    return {key: dict(value) for key, value in STATIC_METADATA.items()}
