"""LaTeX math in Markdown -> MathML, on the kernel side (pure).

``$…$`` and ``\\(…\\)`` are inline math, ``$$…$$`` and ``\\[…\\]`` display math.
The dollars are mdit-py-plugins' ``dollarmath`` rules, set for currency: no
space inside the dollars and no digit right after the closing one, so "$5 and
$10" stays text. The brackets are two small inline rules here (texmath's
regular expressions rescan the rest of the text for each opening bracket).

MathML, unlike MathJax, needs no script: it shows live, in the saved copy, in
nbconvert's HTML and on GitHub. latex2mathml writes it; what it cannot read
(or anything over :data:`MAX_LATEX` characters) shows as the source in a
``<code>``, never as an error. Its output goes through the same sanitizer as
everything else, which keeps MathML's presentation elements and drops
``maction``, ``semantics`` and every ``href``, ``style`` and colour attribute
(latex2mathml turns ``\\href`` and ``\\style`` into them). ``<`` and ``>``
become ``\\lt`` and ``\\gt`` before conversion, since latex2mathml copies
``\\text{…}`` into the markup unescaped.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Sequence

from latex2mathml.converter import convert
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.dollarmath.index import math_inline_dollar

__all__ = ["MATHML_ATTRIBUTES", "MATHML_TAGS", "MAX_LATEX", "latex_to_mathml", "math_plugin"]

MAX_LATEX = 4_000
"""A formula longer than this many characters is shown as its source."""

MATHML_TAGS = frozenset(
    {
        "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup",
        "mfrac", "msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd",
        "mstyle", "mpadded", "mphantom", "menclose", "merror", "mmultiscripts", "mprescripts",
        "none",
    }
)  # fmt: skip
"""MathML's presentation elements: no ``maction`` (it acts on events), ``semantics``,
``annotation(-xml)`` (which can hold HTML) or ``mglyph`` (which loads an image)."""

MATHML_ATTRIBUTES = frozenset(
    {
        "display", "mathvariant", "displaystyle", "scriptlevel", "stretchy", "fence",
        "separator", "lspace", "rspace", "form", "largeop", "movablelimits", "symmetric",
        "minsize", "maxsize", "accent", "accentunder", "linethickness", "width", "height",
        "depth", "voffset", "columnalign", "rowalign", "columnspacing", "rowspacing",
        "columnlines", "rowlines", "frame", "columnspan", "rowspan", "notation",
    }
)  # fmt: skip
"""Layout attributes only, whose values the sanitizer also checks: no URL, style or colour."""


@functools.lru_cache(maxsize=4096)
def latex_to_mathml(latex: str, display: bool) -> str:
    """MathML for ``latex``, or its source as code when it cannot be read (not sanitized)."""
    source = latex.strip()
    mark = "$$" if display else "$"
    fallback = f'<code class="nbchat-math-error">{html.escape(mark + latex + mark)}</code>'
    if not source or len(source) > MAX_LATEX:
        return fallback
    source = source.replace("<", r"\lt ").replace(">", r"\gt ")
    try:
        return convert(source, display="block" if display else "inline")
    except Exception:
        return fallback


Rule = Callable[[RendererHTML, Sequence[Token], int, OptionsDict, EnvType], str]
"""A markdown-it render rule."""


def _rules(piece: Callable[[EnvType, str], str]) -> tuple[Rule, Rule, Rule]:
    """The render rules of inline, display and block math, each formula handed to ``piece``."""

    def inline(
        self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return piece(env, latex_to_mathml(tokens[idx].content, False))

    def display(
        self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return piece(env, latex_to_mathml(tokens[idx].content, True))

    def block(
        self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return f"<p>{piece(env, latex_to_mathml(tokens[idx].content, True))}</p>\n"

    return inline, display, block


def _as_is(env: EnvType, markup: str) -> str:
    return markup


_LAST_CLOSE = -0x4E42
"""A key of markdown-it's per-paragraph ``state.cache``: where each closing bracket last occurs."""


def _brackets(opening: str, closing: str, kind: str) -> Callable[[StateInline, bool], bool]:
    def rule(state: StateInline, silent: bool) -> bool:
        pos = state.pos
        src = state.src
        if not src.startswith(opening, pos):
            return False
        key = _LAST_CLOSE - len(kind)
        last = state.cache.get(key)
        if last is None:
            last = state.cache[key] = src.rfind(closing, 0, state.posMax)
        if last < pos + 2:  # no closing bracket after this one: linear for any run of openings
            return False
        end = src.find(closing, pos + 2, state.posMax)
        if end == pos + 2:
            return False
        if not silent:
            token = state.push(kind, "math", 0)
            token.content = src[pos + 2 : end]
            token.markup = opening
        state.pos = end + 2
        return True

    return rule


def _at_start_too(rule: Callable[[StateInline, bool], bool]) -> Callable[[StateInline, bool], bool]:
    """dollarmath's inline rule, also at the start of a paragraph that ends in a digit.

    Without digits allowed it reads the character before the opening dollar as
    ``src[pos - 1]``, which at the start is the last one: "$x$ is 5" had no math.
    """

    def wrapped(state: StateInline, silent: bool) -> bool:
        if state.pos or not state.src[-1:].isdigit():
            return rule(state, silent)
        src = state.src
        state.src = src + " "  # past posMax: never read as text, only as "the one before"
        try:
            return rule(state, silent)
        finally:
            state.src = src

    return wrapped


def math_plugin(md: MarkdownIt, piece: Callable[[EnvType, str], str] = _as_is) -> None:
    """Math in ``md``: dollars (set for currency) and brackets, rendered to MathML.

    Each formula's markup goes through ``piece`` (with the render's env), which
    returns what to put in the HTML in its place: by default the markup itself.
    """
    dollarmath_plugin(
        md,
        allow_labels=False,
        allow_space=False,
        allow_digits=False,
        allow_blank_lines=False,
        double_inline=True,
    )
    md.inline.ruler.at("math_inline", _at_start_too(math_inline_dollar(False, False, True)))
    md.inline.ruler.before("escape", "math_paren", _brackets("\\(", "\\)", "math_inline"))
    md.inline.ruler.before("escape", "math_bracket", _brackets("\\[", "\\]", "math_inline_double"))
    inline, display, block = _rules(piece)
    md.add_render_rule("math_inline", inline)
    md.add_render_rule("math_inline_double", display)
    md.add_render_rule("math_block", block)
