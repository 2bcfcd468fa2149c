"""Untrusted Markdown -> sanitized HTML, in full or while it streams (pure).

Markdown (the model's replies) is rendered by markdown-it with raw HTML
disabled, then cleaned by nh3 (ammonia) with an explicit allow-list of tags,
attributes and URL schemes. The renderer alone would already escape raw HTML;
the sanitizer is there so that a bug or a plugin in the renderer still cannot
let a ``<script>``, an ``on*`` handler or a ``javascript:`` URL through.

Images in replies are rendered as links labelled by their alt text: a remote
image loads the moment a reply is shown, which would let a prompt-injected
model leak data through its URL. Links open in a new tab (``target="_blank"``
with ``rel="noopener noreferrer nofollow"``) because following one in place
would navigate the JupyterLab page away.

Cost: one render is linear in the text. While a reply streams in, the widget
re-renders it many times, which would make a long reply quadratic;
:class:`StreamingMarkdown` keeps the HTML of the top-level blocks that can no
longer change and re-parses only the unfinished end.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = ["StreamingMarkdown", "markdown_to_html", "normalize_newlines"]


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


_ALIGNMENTS = frozenset({"left", "center", "right"})

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_md.enable(["table", "strikethrough"])
_md.add_render_rule("image", _render_image)
_md.add_render_rule("th_open", _render_cell_open)
_md.add_render_rule("td_open", _render_cell_open)

_BLOCK_TAGS = {"p", "pre", "blockquote", "ul", "ol", "li", "hr", "h1", "h2", "h3", "h4", "h5", "h6"}
_INLINE_TAGS = {"a", "br", "code", "em", "strong", "del", "s"}
_TABLE_TAGS = {"table", "thead", "tbody", "tr", "th", "td"}
_ALLOWED_TAGS = frozenset(_BLOCK_TAGS | _INLINE_TAGS | _TABLE_TAGS)
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    # A class could pull in any of the page's styles (e.g. hide or overlay
    # JupyterLab's UI), so code keeps only markdown-it's ``language-*`` class.
    if name == "class":
        return value if tag == "code" and _LANGUAGE_CLASS.fullmatch(value) else None
    if name == "start":
        return value if value.isdigit() and len(value) <= 9 else None
    return value


_cleaner = nh3.Cleaner(
    tags=_ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "code": {"class"}, "ol": {"start"}},
    attribute_filter=_filter_attribute,
    strip_comments=True,
    link_rel="noopener noreferrer nofollow",
    tag_attribute_values={"th": {"align": _ALIGNMENTS}, "td": {"align": _ALIGNMENTS}},
    set_tag_attribute_values={"a": {"target": "_blank"}},
    url_schemes=_URL_SCHEMES,
)


def markdown_to_html(text: str) -> str:
    """Render untrusted Markdown to sanitized HTML: no raw HTML, only http(s)/mailto links."""
    return _cleaner.clean(_md.render(text))


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

    def reset(self) -> None:
        """Forget the cached prefix (done automatically when the text is not an append)."""
        self._stable_text = self._stable_html = ""
        self._env = {}

    def render(self, text: str) -> str:
        """The sanitized HTML of ``text``; cheap when ``text`` extends the previous one."""
        text = normalize_newlines(text)
        if not text.startswith(self._stable_text):
            self.reset()
        tail = text[len(self._stable_text) :]
        env: dict[str, Any] = {"references": dict(self._env.get("references", {}))}
        tokens = _md.parse(tail, env)
        split, offset = _final_boundary(tail, tokens)
        if split:
            stable = tail[:offset]
            self._stable_html += _cleaner.clean(_md.render(stable, self._env))
            self._stable_text += stable
            tokens = tokens[split:]
        return self._stable_html + _cleaner.clean(_md.renderer.render(tokens, _md.options, env))


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
