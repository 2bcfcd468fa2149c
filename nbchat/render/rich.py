"""A tool's return value, looked at once: what a person sees in its card, what the model reads.

The decision is made here, from the value alone, and nowhere else (pure: no
I/O, and pandas, matplotlib and PIL are never imported; a value is recognised
by its type's module and name, or by the display methods it has, as Jupyter
recognises them). In order:

- PNG or JPEG bytes (by magic number): the image;
- a pandas ``DataFrame`` or ``Series``: a bounded table (:mod:`~nbchat.render.richtable`);
- a matplotlib ``Figure`` (or ``Axes``, for its figure): drawn as a PNG;
- a PIL image: encoded as a PNG (:mod:`~nbchat.render.richimage`, which bounds images);
- Jupyter's display protocol, each view from ``_repr_mimebundle_`` (altair, plotly) or else
  the value's own method, in this order: ``_repr_png_`` or ``_repr_jpeg_``
  (``IPython.display.Image``): the image; ``_repr_html_``: through the sanitizer model text
  goes through (:func:`~nbchat.render.markdown.sanitize_html`), skipped when it shows nothing
  (all script); ``_repr_markdown_``: rendered as model text is; ``_repr_latex_`` (sympy):
  MathML, as model text's math is;
- SVG only: not shown (SVG can carry script), said in one line.

Anything else is not rich (None): its result goes the JSON way it always did
(:mod:`nbchat.toolresult`). The model is given text only, never HTML: a
table's shape, dtypes and first rows; an image's kind and size; an HTML or
Markdown repr's text. A value whose own methods raise (``iloc``, ``savefig``,
``_repr_html_``) is shown as one line saying so. The card's text is redacted
(:mod:`nbchat.redact`), since the card becomes the notebook's saved copy.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import Any

from ..redact import redact_text
from ..toolspec import error_text
from .markdown import markdown_to_html, sanitize_html
from .math import latex_to_mathml
from .richimage import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    figure_rich,
    image_rich,
    pil_rich,
    repr_image_rich,
)
from .richtable import table_rich
from .richtypes import MAX_MODEL_CHARS, MAX_OUTPUT_PARTS, Output, Rich, RichKind, refused

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_MODEL_CHARS",
    "MAX_REPR_CHARS",
    "Output",
    "Rich",
    "RichKind",
    "rich_result",
]

MAX_REPR_CHARS = 200_000
"""An ``_repr_html_`` or ``_repr_markdown_`` longer than this is cut before it is sanitized."""

_PLAIN = (str, int, float, bool, type(None), dict, list, tuple, set, frozenset)
"""Types that are never rich: the common results skip every check."""
_LIBRARIES = frozenset({"pandas", "matplotlib", "PIL"})


def rich_result(value: Any) -> Rich | None:
    """How ``value`` shows in a card and what the model reads of it; None if it is not rich."""
    if isinstance(value, _PLAIN):
        return None
    if isinstance(value, Output):
        return _output(value)
    try:
        return _represent(value)
    except Exception as exc:  # the value's own code failed: say so, in one line
        return refused(f"a {_name(value)}", f"it could not be shown ({error_text(exc)})")


# Private helpers


def _represent(value: Any) -> Rich | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return image_rich(value)
    root, name = _library(value)
    if root == "pandas" and name in ("DataFrame", "Series"):
        return table_rich(value, name)
    if root == "matplotlib":
        if callable(getattr(value, "savefig", None)):
            return figure_rich(value)
        figure = getattr(value, "figure", None)
        if callable(getattr(figure, "savefig", None)):
            return figure_rich(figure)
    if root == "PIL" and callable(getattr(value, "save", None)) and hasattr(value, "size"):
        return pil_rich(value)
    if _method(value, "_ipython_canary_method_should_not_exist_") is not None:
        return None  # answers every attribute (a proxy, a mock): its "reprs" mean nothing
    bundle = _bundle(value)
    for mime, display in _VIEWS:
        data = bundle.get(mime)
        if data is None:
            method = _method(value, display)
            data = method() if method is not None else None
        shown = _view(mime, data, display)
        if shown is not None:
            return shown
    if "image/svg+xml" in bundle or _method(value, "_repr_svg_") is not None:
        return refused(
            f"an SVG image ({_name(value)})", "nbchat shows no SVG, which can carry script"
        )
    return None


_VIEWS = (
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
)
"""The views nbchat can show, in the order it prefers them, each from the value's
``_repr_mimebundle_`` or else its own method (IPython's display protocol); SVG never."""


def _bundle(value: Any) -> dict[str, Any]:
    """What ``_repr_mimebundle_`` gives (altair, plotly, IPython's ``Image``), or nothing."""
    method = _method(value, "_repr_mimebundle_")
    bundle = method(include=None, exclude=None) if method is not None else None  # as IPython
    if isinstance(bundle, tuple) and bundle:  # (data, metadata)
        bundle = bundle[0]
    return bundle if isinstance(bundle, dict) else {}


def _view(mime: str, data: Any, display: str) -> Rich | None:
    """One view of a value, shown; None when it gave none or shows nothing (an HTML view that
    is all script, as plotly's is: the next view, or the value's text, says more)."""
    if data is None:
        return None
    if mime.startswith("image/"):
        return repr_image_rich(data, display)
    if isinstance(data, tuple) and data:  # (data, metadata)
        data = data[0]
    if not isinstance(data, str):
        return None
    if mime == "text/latex":
        return _math(data)
    shown = _markup(data, "html" if mime == "text/html" else "markdown")
    return shown if shown.text or "<img" in shown.html else None


def _output(output: Output) -> Rich | None:
    """Code's output: its text as a block, then each value it showed, as each is shown alone;
    the model reads the text and a line per value. None when it showed nothing rich."""
    scrub = output.scrub or (lambda text: text)
    views = [
        view
        for view in (rich_result(value) for value in output.shown[:MAX_OUTPUT_PARTS])
        if view is not None and view.kind != "output"
    ]
    if not views:
        return None
    more = len(output.shown) - MAX_OUTPUT_PARTS
    read = "\n".join(
        [output.text, *(f"displayed: {view.text}" for view in views)]
        + ([f"({more} more values shown, not listed)"] if more > 0 else [])
    )
    text = html.escape(scrub(output.text))
    parts = "".join(scrub(view.html) for view in views)
    markup = (
        '<div class="nbchat-rich nbchat-rich-output">'
        f'<pre class="nbchat-rich-text"><code>{text}</code></pre>{parts}</div>'
    )
    images = tuple(image for view in views for image in view.images)
    return Rich("output", scrub(read), markup, displayed=images)


def _library(value: Any) -> tuple[str, str]:
    """The library a value's type (or a base of it: a GeoDataFrame is a DataFrame) comes from,
    and that class's name; ``("", "")`` for none of those recognised here."""
    for kind in type(value).__mro__:
        root = (kind.__module__ or "").partition(".")[0]
        if root in _LIBRARIES:
            return root, kind.__name__
    return "", ""


def _method(value: Any, name: str) -> Any:
    """A display method the value's type defines (never an instance's ``__getattr__``)."""
    if getattr(type(value), name, None) is None:
        return None
    method = getattr(value, name, None)
    return method if callable(method) else None


def _markup(text: str, kind: RichKind) -> Rich:
    """An HTML or Markdown repr: sanitized for the card, its text for the model."""
    note = ""
    if len(text) > MAX_REPR_CHARS:
        note = f"cut: {MAX_REPR_CHARS:,} of its {len(text):,} characters shown"
        text = text[:MAX_REPR_CHARS]
    cleaned = redact_text(text)
    if kind == "html":
        body = sanitize_html(cleaned)
        read = _text_of_html(body)  # what the person sees, as text (redacted, as the card is)
    else:
        body, read = markdown_to_html(cleaned), text.strip()
    if len(read) > MAX_MODEL_CHARS:
        read = read[:MAX_MODEL_CHARS] + " … [cut]"
    line = f'<div class="nbchat-rich-note">{html.escape(note)}</div>' if note else ""
    return Rich(kind, read, f'<div class="nbchat-rich nbchat-rich-{kind}">{body}</div>{line}')


_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
"""How a LaTeX view marks its formula (sympy gives ``$\\displaystyle x^{2}$``)."""


def _math(latex: str) -> Rich:
    """A LaTeX view (sympy, ``IPython.display.Math``) as MathML; the model reads the LaTeX.

    One formula, delimited or bare (``\\begin{align}…``), is display math; text with
    formulas in it (``Latex("where $x$ is…")``) renders as model text, math and all. LaTeX
    that latex2mathml cannot read shows as its source, as in model text.
    """
    latex = latex.strip()[:MAX_REPR_CHARS]
    formula: str | None = latex
    for opening, closing in _DELIMITERS:
        inner = latex[len(opening) : -len(closing)]
        if latex.startswith(opening) and latex.endswith(closing) and inner:
            formula = None if closing in inner or opening in inner else inner
            break
    else:
        if any(mark in latex for mark in ("$", "\\(", "\\[")):
            formula = None
    if formula is None:
        return _markup(latex, "markdown")
    body = sanitize_html(latex_to_mathml(redact_text(formula), display=True))
    read = latex if len(latex) <= MAX_MODEL_CHARS else latex[:MAX_MODEL_CHARS] + " … [cut]"
    return Rich("math", read, f'<div class="nbchat-rich nbchat-rich-math">{body}</div>')


class _Text(HTMLParser):
    """The text of HTML as a page shows it, script and style left out, for the model."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _text_of_html(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def _name(value: Any) -> str:
    """The value's type as a person would look it up: ``pandas.DataFrame``, ``IPython.SVG``."""
    kind = type(value)
    module = (kind.__module__ or "").partition(".")[0]
    return f"{module}.{kind.__name__}" if module and module != "builtins" else kind.__name__
