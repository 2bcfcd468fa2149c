"""What a rich tool result is made of: the person's view and the model's text, decided together.

Kept apart from :mod:`~nbchat.render.rich` (which decides) so the table and
image modules it calls can build one without importing it back.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ..redact import redact_text

__all__ = ["MAX_MODEL_CHARS", "MAX_OUTPUT_PARTS", "TIMES", "Output", "Rich", "RichKind", "refused"]

RichKind: TypeAlias = Literal["table", "image", "html", "markdown", "math", "refused", "output"]

TIMES = "\u00d7"
"""The multiplication sign (U+00D7) of an image size and a table shape, as people write them."""

MAX_MODEL_CHARS = 4_000
"""The longest text a model is given for one rich result: a summary, not the data."""


@dataclass(frozen=True)
class Rich:
    """One tool result as two things: what the model reads, and what the person sees."""

    kind: RichKind
    text: str
    """What the model is given: plain text, never HTML (a summary, a description)."""
    html: str
    """What the card shows: a sanitized fragment nbchat wrote (escaped text, checked images)."""
    image: tuple[str, str] | None = None
    """An image's MIME type and base64 bytes, checked and bounded: what an attachment sends
    a model (:mod:`nbchat.render.attachable`)."""
    reason: str = ""
    """Why a refused value is not shown, in one line."""
    displayed: tuple[tuple[str, str], ...] = ()
    """The images among the values code displayed (an ``output``), as ``image`` holds one."""

    @property
    def images(self) -> tuple[tuple[str, str], ...]:
        """Every image it shows, as MIME type and base64: what a model that reads images is
        given besides the text (:func:`nbchat.render.attachable.tool_images`)."""
        return ((self.image,) if self.image is not None else ()) + self.displayed


MAX_OUTPUT_PARTS = 8
"""Values one :class:`Output` shows; the rest are counted in a line."""


@dataclass(frozen=True)
class Output:
    """What code printed and showed, as a cell's output is (``run_code``): its text, and the
    values it displayed (a DataFrame, a figure) or ended with, each shown as a tool's value is.

    ``scrub`` is applied to everything shown and read (the notebook's secret values out).
    """

    text: str
    shown: tuple[Any, ...] = ()
    scrub: Callable[[str], str] | None = None


def refused(what: str, why: str) -> Rich:
    """A value not shown (too large, unreadable, SVG): one line in the card, and for the model."""
    line = f"{what}: not shown, {why}"
    return Rich(
        "refused",
        f"{line} (the person was told)",
        f'<div class="nbchat-rich nbchat-rich-refused">{html.escape(redact_text(line))}</div>',
        reason=line,
    )
