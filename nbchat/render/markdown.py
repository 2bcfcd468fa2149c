"""Untrusted Markdown -> sanitized HTML, in full or while it streams (pure).

Markdown (the model's replies) is rendered by markdown-it with raw HTML
disabled, then cleaned by nh3 (ammonia) with an explicit allow-list of tags,
attributes and URL schemes. The renderer alone would already escape raw HTML;
the sanitizer is there so that a bug or a plugin in the renderer still cannot
let a ``<script>``, an ``on*`` handler or a ``javascript:`` URL through.

Fenced code is highlighted by :mod:`~nbchat.render.highlight` (token classes
``nbchat-tok-*``) in a ``<div class="nbchat-code">`` that gets a Copy button after
sanitizing (the panel's script copies the block's text), and math becomes MathML
(:mod:`~nbchat.render.math`); the sanitizer keeps exactly those classes and
MathML's presentation elements with layout attributes.

Images in replies are rendered as links labelled by their alt text: a remote
image loads the moment a reply is shown, which would let a prompt-injected
model leak data through its URL. Links open in a new tab (``target="_blank"``
with ``rel="noopener noreferrer nofollow"``) because following one in place
would navigate the JupyterLab page away.

Cost: one render is linear in the text. While a reply streams in, the widget
re-renders it many times, which would make a long reply quadratic;
:class:`StreamingMarkdown` keeps the HTML of the top-level blocks that can no
longer change and re-parses only the unfinished end. Highlighted code and
MathML cost the sanitizer about 20 times what prose does, so each code block
and formula is sanitized alone, once, and kept (:func:`_html`): the stream's
later renders and the reply's final render reuse it.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from .highlight import TOKEN_CLASSES, OpenFence, highlight
from .math import MATHML_ATTRIBUTES, MATHML_TAGS, math_plugin

__all__ = ["StreamingMarkdown", "markdown_to_html", "normalize_newlines", "sanitize_html"]


def _render_image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # A link instead of an <img>: nothing loads until the user clicks.
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children, options, env)
    src = str(token.attrGet("src") or "")
    return f'<a href="{html.escape(src)}">{html.escape(alt or "image")}</a>'


def _render_cell_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # Column alignment as the ``align`` attribute, so no ``style`` attribute is ever needed.
    token = tokens[idx]
    align = str(token.attrGet("style") or "").removeprefix("text-align:")
    if align in _ALIGNMENTS:
        return f'<{token.tag} align="{align}">'
    return f"<{token.tag}>"


def _render_fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # Highlighted, in a box that gets its own Copy button (_with_copy_buttons, after cleaning).
    token = tokens[idx]
    language = _fence_language(token)
    open_fence = env.get(_OPEN_FENCE) if idx == len(tokens) - 1 else None
    if isinstance(open_fence, OpenFence):  # still growing: not worth keeping
        return _fence_box(language, open_fence.render(token.content, language))
    return _piece(env, _fence_box(language, highlight(token.content, language)))


def _fence_box(language: str, body: str) -> str:
    valid = _LANGUAGE_CLASS.fullmatch(f"language-{language}")
    css = f' class="language-{language}"' if valid else ""
    return f'<div class="nbchat-code"><pre><code{css}>{body}</code></pre></div>\n'


_ALIGNMENTS = frozenset({"left", "center", "right"})
_OPEN_FENCE = "nbchat_open_fence"
"""The env key under which StreamingMarkdown hands the fence still open at its end."""
_PIECES = "nbchat_pieces"
"""The env key of the list in which a render collects its code blocks' and formulas' markup."""
_PIECE_OPEN, _PIECE_CLOSE = "\ue001", "\ue002"
_PIECE_REF = re.compile(f"{_PIECE_OPEN}([0-9]+){_PIECE_CLOSE}")
"""A piece's stand-in in the rest of the markup: private-use characters around its index."""


def _piece(env: EnvType, markup: str) -> str:
    """A stand-in for ``markup`` (a code block, a formula), which is sanitized on its own.

    Sanitizing highlighted code and MathML costs about 20 times what the same
    length of prose does; a finished block's markup is sanitized once
    (:func:`_clean_piece`) and reused by every later render of the reply,
    the final one included. Outside :func:`_html` it is the markup itself.
    """
    pieces = env.get(_PIECES)
    if not isinstance(pieces, list):
        return markup
    pieces.append(markup)
    return f"{_PIECE_OPEN}{len(pieces) - 1}{_PIECE_CLOSE}"


def _markdown_it(rich: bool = True) -> MarkdownIt:
    """CommonMark with tables and strikethrough; ``rich`` adds highlighting and math."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _render_image)
    md.add_render_rule("th_open", _render_cell_open)
    md.add_render_rule("td_open", _render_cell_open)
    if rich:
        md.add_render_rule("fence", _render_fence)
        math_plugin(md, _piece)
    return md


_md = _markdown_it()

_BLOCK_TAGS = {"p", "pre", "blockquote", "ul", "ol", "li", "hr", "h1", "h2", "h3", "h4", "h5", "h6"}
_INLINE_TAGS = {"a", "br", "code", "em", "strong", "del", "s"}
_TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td"}
_ALLOWED_TAGS = frozenset(_BLOCK_TAGS | _INLINE_TAGS | _TABLE_TAGS | MATHML_TAGS | {"div", "span"})
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")


_MATHML_VALUE = re.compile(r"[A-Za-z0-9 .%+-]{1,40}")
"""A MathML layout value: a length, a number or a keyword; never a URL, a colour or a style."""
_CODE_CLASSES = frozenset({"nbchat-math-error"})


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    # A class could pull in any of the page's styles (e.g. hide or overlay JupyterLab's UI),
    # so each element keeps only the classes this module writes on it.
    if name == "class":
        if tag == "code":
            return value if _LANGUAGE_CLASS.fullmatch(value) or value in _CODE_CLASSES else None
        if tag == "span":
            return value if value in TOKEN_CLASSES else None
        return value if tag == "div" and value == "nbchat-code" else None
    if name == "start":
        return value if value.isdigit() and len(value) <= 9 else None
    if tag in MATHML_TAGS:
        return value if _MATHML_VALUE.fullmatch(value) else None
    return value


_cleaner = nh3.Cleaner(
    tags=_ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes={
        "a": {"href", "title"},
        "code": {"class"},
        "ol": {"start"},
        "span": {"class"},
        "div": {"class"},
        **{tag: set(MATHML_ATTRIBUTES) for tag in MATHML_TAGS},
    },
    attribute_filter=_filter_attribute,
    strip_comments=True,
    link_rel="noopener noreferrer nofollow",
    tag_attribute_values={"th": {"align": _ALIGNMENTS}, "td": {"align": _ALIGNMENTS}},
    set_tag_attribute_values={"a": {"target": "_blank"}},
    url_schemes=_URL_SCHEMES,
)


_CODE_BOX = '<div class="nbchat-code">'
_COPY_BUTTON = (
    '<button type="button" class="nbchat-copy nbchat-code-copy" aria-label="Copy this code">'
    "Copy</button>"
)


def _clean(markup: str) -> str:
    """Sanitize, then give each code block its Copy button (our markup, never the input's).

    Only :func:`_render_fence` writes the box: raw HTML is off, so no text can.
    """
    return _cleaner.clean(markup).replace(_CODE_BOX, _CODE_BOX + _COPY_BUTTON)


_MAX_KEPT = 20_000
"""A piece longer than this many characters is cleaned each time, never kept: the cache
holds at most 1024 of them (about 40 MB), a reply of 20k tokens about 600."""


def _cleaned(markup: str) -> str:
    """A piece sanitized alone: balanced markup of ours (a code box, MathML, a math
    error's ``<code>``) that cleans the same alone as in its place."""
    return _clean_piece(markup) if len(markup) <= _MAX_KEPT else _cleaner.clean(markup)


@functools.lru_cache(maxsize=1024)
def _clean_piece(markup: str) -> str:
    return _cleaner.clean(markup)


def _html(tokens: Sequence[Token], env: dict[str, Any]) -> str:
    """The sanitized HTML of ``tokens``, each code block and formula sanitized once.

    The markup around the pieces is sanitized with stand-ins in their place, then
    each stand-in becomes its piece sanitized alone: the same HTML as cleaning the
    whole, since a piece is a balanced element that html5ever parses the same
    anywhere markdown-it puts one. When the text itself holds a stand-in
    character, or a stand-in did not come through in order, it is the whole.
    """
    pieces: list[str] = []
    env[_PIECES] = pieces
    try:
        markup = _md.renderer.render(tokens, _md.options, env)
    finally:
        del env[_PIECES]
    if pieces and markup.count(_PIECE_OPEN) == len(pieces):
        parts = _PIECE_REF.split(_cleaner.clean(markup))
        if parts[1::2] == [str(index) for index in range(len(pieces))]:
            parts[1::2] = map(_cleaned, pieces)
            return "".join(parts).replace(_CODE_BOX, _CODE_BOX + _COPY_BUTTON)
    if pieces:
        markup = _md.renderer.render(tokens, _md.options, env)  # the pieces in their places
    return _clean(markup)


def sanitize_html(markup: str) -> str:
    """Untrusted HTML (a tool result's ``_repr_html_``) through the allow-list model text gets.

    No Copy button is added: only markup this module rendered gets one.
    """
    return _cleaner.clean(markup)


def markdown_to_html(text: str) -> str:
    """Render untrusted Markdown to sanitized HTML: no raw HTML, only http(s)/mailto links."""
    env: dict[str, Any] = {}
    return _html(_md.parse(text, env), env)


_NEWLINE = re.compile(r"\r\n?")


def normalize_newlines(text: str) -> str:
    """Newlines as markdown-it's own "normalize" rule makes them, so line numbers match slices."""
    return _NEWLINE.sub("\n", text).replace("\0", "\ufffd")


class StreamingMarkdown:
    """Render a reply that grows by appends, re-parsing only its unfinished end.

    A top-level block is final once a blank line and a complete line of a new
    top-level block follow it: appending text can then only change what comes
    after. (A boundary without both is not final: ``2`` after a blank line is
    a paragraph until a ``.`` makes it the next item of the list before it.)
    The HTML of final blocks is kept, so each update costs about the size of
    the unfinished end instead of the whole reply. The result equals
    :func:`markdown_to_html` except for reference-style links defined after
    their use, which resolve in the final full render.
    """

    def __init__(self) -> None:
        self._stable_text = ""
        """The normalized prefix whose blocks are final."""
        self._stable_html = ""
        """Its sanitized HTML."""
        self._env: dict[str, Any] = {}
        """markdown-it's environment for that prefix: its reference definitions."""
        self._open_fence = OpenFence(_cleaner.clean)
        """The highlighting of a code block still open at the end."""
        self._fence: _FenceState | None = None
        """That block, when it is a top-level fence: appends to it skip the parse."""

    def reset(self) -> None:
        """Forget the cached prefix (done automatically when the text is not an append)."""
        self._stable_text = self._stable_html = ""
        self._env = {}
        self._fence = None

    def render(self, text: str) -> str:
        """The sanitized HTML of ``text``; cheap when ``text`` extends the previous one."""
        text = normalize_newlines(text)
        fast = self._render_open_fence(text)
        if fast is not None:
            return fast
        if not text.startswith(self._stable_text):
            self.reset()
        tail = text[len(self._stable_text) :]
        env: dict[str, Any] = {"references": dict(self._env.get("references", {}))}
        tokens = _md.parse(tail, env)
        split, offset = _final_boundary(tail, tokens)
        if split:
            stable = tail[:offset]
            self._stable_html += _html(_md.parse(stable, self._env), self._env)
            self._stable_text += stable
            tokens = tokens[split:]
            tail = tail[offset:]
        self._fence = None
        last = tokens[-1] if tokens else None
        if last is None or last.type != "fence" or _closed_fence(tail, last):
            return self._stable_html + _html(tokens, env)
        env[_OPEN_FENCE] = self._open_fence
        head = self._stable_html + _html(tokens[:-1], env)
        fence = _html(tokens[-1:], env)
        self._remember_fence(tail, last, head, env)
        return head + fence

    # Private methods

    def _remember_fence(self, tail: str, token: Token, head: str, env: dict[str, Any]) -> None:
        """Keep what an append to the open fence ``token`` needs to skip the parse."""
        if token.map is None or token.level:
            return
        starts = [0, *(match.end() for match in _LINE_END.finditer(tail))]
        first = token.map[0]
        if first + 1 >= len(starts) or not tail.startswith(token.markup, starts[first]):
            return  # an indented fence strips its indent from each line: leave it to the parse
        language = _fence_language(token)
        opening, closing = _clean(_fence_box(language, _MARK)).split(_MARK)
        mark = re.escape(token.markup[0])
        self._fence = _FenceState(
            text=self._stable_text + tail[: starts[first + 1]],
            head=head + opening,
            tail=closing,
            language=language,
            closing=re.compile(rf"^ {{0,3}}{mark}{{{len(token.markup)},}}[ \t]*$", re.MULTILINE),
        )

    def _render_open_fence(self, text: str) -> str | None:
        """The HTML of ``text`` when it only added lines to the open fence, else None."""
        fence = self._fence
        if fence is None or not text.startswith(fence.text):
            return None
        content = text[len(fence.text) :]
        if fence.closing.search(content, fence.checked):
            self._fence = None
            return None
        fence.checked = content.rfind("\n") + 1  # the last line may still become a closing one
        if not content[fence.checked :].strip(" \t"):
            content = content[: fence.checked]  # markdown-it drops a last line of blanks
        return fence.head + self._open_fence.render(content, fence.language) + fence.tail


_MARK = "\ue000"
"""A private-use character standing for a fence's code while its wrapper is rendered."""


@dataclass
class _FenceState:
    text: str
    """The text up to the open fence's first line of code."""
    head: str
    """The HTML of everything before that code, the box and ``<code>`` tag included."""
    tail: str
    """The HTML that closes the box."""
    language: str
    closing: re.Pattern[str]
    """A line that would close the fence."""
    checked: int = 0
    """Where in the code a closing line could still appear."""


def _fence_language(token: Token) -> str:
    info = unescapeAll(token.info).strip()
    return info.split(maxsplit=1)[0] if info else ""


def _closed_fence(text: str, token: Token) -> bool:
    """Whether the fence ``token``, the last block of ``text``, has its closing line."""
    if token.map is None or token.map[1] - token.map[0] < 2:
        return False
    last = text.rstrip("\n").rsplit("\n", 1)[-1].strip()
    return len(last) >= len(token.markup) and last == token.markup[0] * len(last)


def _final_boundary(text: str, tokens: Sequence[Token]) -> tuple[int, int]:
    """The last top-level block start that no append can undo: (token index, text offset).

    (0, 0) when there is none.
    """
    starts = [0, *(match.end() for match in _LINE_END.finditer(text))]
    for index in range(len(tokens) - 1, 0, -1):
        token = tokens[index]
        if token.level or token.nesting < 0 or token.map is None:
            continue
        line = token.map[0]
        complete = line + 1 < len(starts)
        if complete and line and not text[starts[line - 1] : starts[line]].strip(" \t\n"):
            return index, starts[line]
    return 0, 0


_LINE_END = re.compile("\n")
