"""Fenced code -> highlighted HTML with Pygments, as ``<span>``s of short token classes (pure).

The classes are Pygments' own short names with a prefix (``nbchat-tok-k`` for a
keyword): :data:`TOKEN_CLASSES` is the whole set, the only span classes the
sanitizer keeps, and ``chat.css`` colours them for light and dark themes. Only
a lexer named by the fence's language is used (no guessing, which is slow and
can be steered); an unknown language or an oversized block stays plain escaped
text. The text of the spans is exactly the code, so a copy of the block's text
is the code as written.

Cost: Pygments lexes about 0.5 MB a second, so each closed block is highlighted
once and kept (a small LRU), and the final render of a reply reuses what the
stream already highlighted. A fence still open at the end of a streaming reply
is highlighted by :class:`OpenFence` in pieces of complete lines, so each
update lexes only the code since the last piece.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound

__all__ = ["CLASS_PREFIX", "MAX_HIGHLIGHT", "TOKEN_CLASSES", "OpenFence", "highlight"]

CLASS_PREFIX = "nbchat-tok-"
"""The prefix of every token class, so they cannot collide with the page's own classes."""

TOKEN_CLASSES = frozenset(CLASS_PREFIX + name for name in STANDARD_TYPES.values() if name)
"""Every class a highlighted span can carry: the sanitizer allows these and no others."""

MAX_HIGHLIGHT = 200_000
"""Code longer than this many characters is shown plain: highlighting it would stall the kernel."""

_PIECE = 512
"""An open fence is highlighted in pieces of about this many characters of complete lines."""


@functools.lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer | None:
    if not language or len(language) > 40:
        return None
    try:
        # stripnl/ensurenl off: the spans' text is the code exactly, first newline included.
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


@functools.lru_cache(maxsize=512)
def _css_class(ttype: _TokenType) -> str:
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    name = STANDARD_TYPES[ttype]
    return CLASS_PREFIX + name if name else ""


def _spans(code: str, lexer: Lexer) -> str:
    parts: list[str] = []
    css = _css_class
    escape = html.escape
    for ttype, value in lexer.get_tokens(code):
        name = css(ttype)
        text = escape(value, quote=False)
        parts.append(f'<span class="{name}">{text}</span>' if name and value.strip() else text)
    return "".join(parts)


@functools.lru_cache(maxsize=512)
def _highlighted(code: str, language: str) -> str:
    lexer = _lexer(language)
    if lexer is None or len(code) > MAX_HIGHLIGHT:
        return html.escape(code, quote=False)
    return _spans(code, lexer)


def highlight(code: str, language: str) -> str:
    """``code`` as escaped HTML, in token spans when ``language`` names a Pygments lexer."""
    return _highlighted(code, language.lower())


class OpenFence:
    """Highlights a code block that is still growing at the end of a streaming reply.

    Complete lines are highlighted once, in pieces, and kept; each call lexes
    only the code after the last piece. A construct that spans two pieces (a
    string over many lines) may be coloured as if it started fresh until the
    block closes and is highlighted whole.
    """

    def __init__(self, clean: Callable[[str], str] = str) -> None:
        self._clean = clean
        """The sanitizer, run on each piece once and on the rest each call."""
        self._key = ("", "")
        """The language and the code highlighted so far, in pieces."""
        self._html = ""
        """Their HTML."""

    def render(self, code: str, language: str) -> str:
        """The HTML of the open block ``code``; cheap when it extends the previous call's."""
        language = language.lower()
        lexer = _lexer(language)
        if lexer is None or len(code) > MAX_HIGHLIGHT:
            return html.escape(code, quote=False)  # linear, and needs no sanitizing
        known_language, known = self._key
        if known_language != language or not code.startswith(known):
            self._key, self._html = (language, ""), ""
            known = ""
        rest = code[len(known) :]
        if len(rest) > _PIECE:
            cut = rest.rfind("\n", 0, len(rest) - 1) + 1
            if cut:
                self._html += self._clean(_spans(rest[:cut], lexer))
                self._key = (language, known + rest[:cut])
                rest = rest[cut:]
        return self._html + self._clean(_spans(rest, lexer))
