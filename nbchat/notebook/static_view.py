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

from .. import render
from ..testing.displays import STATIC_METADATA
from ..turn import Turn

__all__ = ["EMPTY_TEXT", "StaticConversation", "static_bundle"]

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
    turns = list(turns)
    body = render.conversation_html(turns) if turns else ""
    empty = f'<p class="nbchat-note">{EMPTY_TEXT}</p>' if not turns else ""
    return {
        "text/html": f'<div class="nbchat-static {_NO_MATH}">{body}{empty}</div>',
        "text/plain": render.conversation_text(turns) or EMPTY_TEXT,
    }


class StaticConversation:
    """The static outputs of one panel: one display id, so every copy is updated together.

    Showing the panel again adds an output with the same id, which JupyterLab
    (and nbchat's nbval hooks) update along with the earlier ones.
    """

    def __init__(self) -> None:
        self.display_id: str | None = None
        """Set once the panel was displayed (so there are outputs to keep current)."""

    def display(self, turns: Iterable[Turn]) -> None:
        """Add a static output after the panel's own, in the cell being run."""
        from IPython.display import display

        if self.display_id is None:
            self.display_id = uuid.uuid4().hex
        display(static_bundle(turns), raw=True, metadata=_metadata(), display_id=self.display_id)

    def update(self, turns: Iterable[Turn]) -> None:
        """Replace every static output of the panel with the conversation as it is now.

        The metadata travels with each update: an update replaces the saved
        metadata, and an unmarked output is no longer recognised as static.
        """
        if self.display_id is None:
            return
        from IPython.display import update_display

        update_display(
            static_bundle(turns), raw=True, metadata=_metadata(), display_id=self.display_id
        )


def _metadata() -> dict[str, dict[str, bool]]:
    return {key: dict(value) for key, value in STATIC_METADATA.items()}
