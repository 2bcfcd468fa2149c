"""An audit of markup as a browser parses it, and helpers shared by the render tests."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from markdown_it import MarkdownIt
from pygments.token import STANDARD_TYPES

from nbchat.protocol import ErrorInfo, ToolCall

# The audit: parse the markup like a browser would and reject anything active

SAFE_TAGS = {
    # from sanitized Markdown
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
    # from the markup render.py writes itself
    "details", "div", "span", "summary",
}  # fmt: skip
MATHML_TAGS = {
    # MathML's presentation elements, from math in replies
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup",
    "mfrac", "msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd",
    "mstyle", "mpadded", "mphantom", "menclose", "merror", "mmultiscripts", "mprescripts",
    "none",
}  # fmt: skip
SAFE_TAGS |= MATHML_TAGS
FORBIDDEN_TAGS = {
    "script", "iframe", "object", "embed", "style", "svg", "form", "meta", "base",
    "link", "img", "input", "textarea", "template", "video", "source", "body",
    # MathML that acts, holds HTML or loads an image
    "maction", "semantics", "annotation", "annotation-xml", "mglyph",
}  # fmt: skip
COPY_BUTTON = {"type": "button", "class": "nbchat-copy nbchat-code-copy", "aria-label": None}
"""The one button allowed: a code block's Copy (its text is copied by the panel's script)."""
MATHML_ATTRIBUTES = {
    "display", "mathvariant", "displaystyle", "scriptlevel", "stretchy", "fence", "separator",
    "lspace", "rspace", "form", "largeop", "movablelimits", "symmetric", "minsize", "maxsize",
    "accent", "accentunder", "linethickness", "width", "height", "depth", "voffset",
    "columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines", "rowlines",
    "frame", "columnspan", "rowspan", "notation",
}  # fmt: skip
MATHML_VALUE = re.compile(r"[A-Za-z0-9 .%+-]*")
SAFE_ATTRIBUTES = {
    "href", "title", "class", "rel", "target", "align", "start", "open", "role",
    "aria-hidden", "aria-busy",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}
SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
URL_NOISE = re.compile(r"[\x00-\x20\x7f-\x9f]")
CLASS_TOKEN = re.compile(r"nbchat(?:-[a-z-]+)?|language-[A-Za-z0-9_+#.-]+")
PYGMENTS_CLASSES = {f"nbchat-tok-{name}" for name in STANDARD_TYPES.values() if name}
"""Pygments' short token names, prefixed: the only classes a highlighted span may carry."""
IMAGE_SRC = re.compile(r"data:image/(?:png|jpeg);base64,[A-Za-z0-9+/]+={0,2}")
"""The one ``src`` an ``<img>`` may have: a PNG or JPEG in a base64 data URL, nothing else."""
IMAGE_BOX = ("div", "nbchat-rich nbchat-rich-image")
"""The one place an ``<img>`` may be: directly in the box nbchat.render.rich writes for it."""
IMAGE_ATTRIBUTES = {"src", "alt"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}  # fmt: skip


class Audit(HTMLParser):
    """Collects every element, attribute and non-text node of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.parents: list[tuple[str, str] | None] = []
        """Each element's parent as (tag, class), aligned with ``elements``."""
        self.other: list[str] = []
        self.text: list[str] = []
        self._open: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_startendtag(tag, attrs)
        if tag not in _VOID:
            self._open.append((tag, dict(attrs).get("class") or ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))
        self.parents.append(self._open[-1] if self._open else None)

    def handle_endtag(self, tag: str) -> None:
        for at in range(len(self._open) - 1, -1, -1):
            if self._open[at][0] == tag:
                del self._open[at:]
                return

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.other.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.other.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.other.append(f"declaration {data!r}")


def audit(markup: str) -> Audit:
    parser = Audit()
    parser.feed(markup)
    parser.close()
    return parser


def problems(markup: str) -> list[str]:
    """Every reason ``markup`` could run code or restyle the page; empty when inert."""
    parsed = audit(markup)
    found = list(parsed.other)
    for (tag, attrs), parent in zip(parsed.elements, parsed.parents, strict=True):
        if tag == "img":
            given = dict(attrs)
            if (
                parent != IMAGE_BOX
                or len(given) != len(attrs)
                or not set(given) <= IMAGE_ATTRIBUTES
                or not IMAGE_SRC.fullmatch(given.get("src") or "")
            ):
                found.append(f"image {str(attrs)[:120]} in {parent!r}")
            continue
        if tag == "button":
            given = dict(attrs)
            if set(given) != set(COPY_BUTTON) or any(
                value is not None and given[name] != value for name, value in COPY_BUTTON.items()
            ):
                found.append(f"button {attrs!r}")
            continue
        if tag in FORBIDDEN_TAGS or tag not in SAFE_TAGS:
            found.append(f"element <{tag}>")
        names = {name for name, _ in attrs}
        for name, value in attrs:
            value = value or ""
            if tag in MATHML_TAGS and name in MATHML_ATTRIBUTES:
                if not MATHML_VALUE.fullmatch(value):
                    found.append(f"MathML value {name}={value!r} on <{tag}>")
                continue
            if name.startswith("on") or name == "style" or name not in SAFE_ATTRIBUTES:
                found.append(f"attribute {name}={value!r} on <{tag}>")
            if name in ("href", "src"):
                url = URL_NOISE.sub("", value).lower()
                scheme = SCHEME.match(url)
                if scheme and scheme.group(1) not in SAFE_SCHEMES:
                    found.append(f"URL {value!r} on <{tag}>")
            if name == "class":
                found.extend(
                    f"class {token!r} on <{tag}>"
                    for token in value.split()
                    if (tag != "span" or token not in PYGMENTS_CLASSES)
                    and (token.startswith("nbchat-tok-") or not CLASS_TOKEN.fullmatch(token))
                )
            if name == "target" and (value != "_blank" or "rel" not in names):
                found.append(f"target {value!r} without rel on <{tag}>")
    return found


def text_of(markup: str) -> str:
    return " ".join("".join(audit(markup).text).replace("\xa0", " ").split())


def permissive_markdown(markdown: str) -> str:
    """What a careless viewer does: CommonMark with raw HTML on and every URL allowed."""
    md = MarkdownIt("commonmark", {"html": True})
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    rendered: str = md.render(markdown)
    return rendered


def tool_call(**fields: object) -> ToolCall:
    return ToolCall.model_validate({"id": "c1", "name": "search", **fields})


def error(text: str) -> ErrorInfo:
    """A server error whose code and message are both ``text``."""
    return ErrorInfo(code=text, message=text)
