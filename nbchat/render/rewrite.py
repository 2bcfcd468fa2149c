"""Untrusted Markdown -> the same Markdown, inert in any renderer (pure).

Exports carry a model's reply as real Markdown (fenced code, pipe tables,
lists, ``$…$`` math) so it can be pasted anywhere and renders on GitHub, yet a
viewer that passes raw HTML through (nbconvert, a trusted notebook) must not
receive any. So the reply is parsed by the widget's own renderer (raw HTML off,
the same link check) and written back from its tokens: text with every
character that could start markup escaped, links only with http(s), mailto or
relative URLs (others keep their text), images as links (nothing loads),
code in fences longer than any backtick run inside, with a plain language
name, math with ``<`` and ``>`` as ``\\lt`` and ``\\gt``. Nothing the model
wrote is copied through unparsed, so no raw HTML can survive. Linear.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it.token import Token

from .markdown import _md, normalize_newlines

__all__ = ["fenced", "safe_markdown"]

_TEXT_ACTIVE = re.compile(r"[\\`*_\[\]<>&~|$]")
_LINE_START = re.compile(r"^([#+=-]|\d+[.)])", re.MULTILINE)
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_TASK = re.compile(r"\[[ xX]\] ")


def fenced(text: str, info: str = "") -> str:
    """``text`` in a backtick fence longer than any backtick run inside it."""
    runs = re.findall(r"`+", text)
    fence = "`" * max(3, 1 + max((len(run) for run in runs), default=0))
    body = normalize_newlines(text).removesuffix("\n")
    return f"{fence}{info}\n{body}\n{fence}"


def safe_markdown(text: str) -> str:
    """Markdown that renders as ``text`` does in the widget and holds no raw HTML or bad link."""
    tokens = _md.parse(normalize_newlines(text), {})
    return "\n\n".join(_blocks(tokens, 0, len(tokens)))


def _escape(text: str) -> str:
    return _TEXT_ACTIVE.sub(r"\\\g<0>", text)


def _safe_url(url: str) -> bool:
    scheme = _SCHEME.match(url)
    return scheme is None or scheme.group(1).lower() in _SAFE_SCHEMES


def _math(latex: str) -> str:
    return latex.strip().replace("<", r"\lt ").replace(">", r"\gt ").replace("\n", " ")


def _code_span(code: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if code.startswith(("`", " ")) or code.endswith(("`", " ")) else ""
    return f"{ticks}{pad}{code}{pad}{ticks}"


def _inline(children: Sequence[Token] | None) -> str:
    out: list[str] = []
    links: list[str | None] = []  # the target of each open link, None for one dropped
    for token in children or ():
        kind = token.type
        if kind in ("text", "text_special"):
            out.append(_escape(token.content))
        elif kind == "softbreak":
            out.append("\n")
        elif kind == "hardbreak":
            out.append("\\\n")
        elif kind == "code_inline":
            out.append(_code_span(token.content))
        elif kind in ("em_open", "em_close", "strong_open", "strong_close"):
            out.append(token.markup)
        elif kind in ("s_open", "s_close"):
            out.append("~~")
        elif kind == "link_open":
            href = str(token.attrGet("href") or "")
            links.append(
                _target(href, str(token.attrGet("title") or "")) if _safe_url(href) else None
            )
            if links[-1] is not None:
                out.append("[")
        elif kind == "link_close":
            target = links.pop() if links else None
            if target is not None:
                out.append(target)
        elif kind == "image":
            src = str(token.attrGet("src") or "")
            alt = _escape("".join(child.content for child in token.children or ()) or "image")
            out.append(f"[{alt}](<{src}>)" if _safe_url(src) else alt)
        elif kind == "math_inline":
            out.append(f"${_math(token.content)}$")
        elif kind == "math_inline_double":
            out.append(f"$${_math(token.content)}$$")
    # A line of text that starts like a heading, a list item or a rule stays text.
    return _LINE_START.sub(_line_start_escaped, "".join(out))


def _line_start_escaped(match: re.Match[str]) -> str:
    mark = match.group()
    return "\\" + mark if mark[0] in "#+=-" else mark[:-1] + "\\" + mark[-1]


def _target(href: str, title: str) -> str:
    title = title.replace("\\", "\\\\").replace('"', '\\"')
    return f'](<{href}> "{title}")' if title else f"](<{href}>)"


def _closing(tokens: Sequence[Token], start: int) -> int:
    """The index of the token that closes ``tokens[start]``."""
    level = tokens[start].level
    close = tokens[start].type.replace("_open", "_close")
    for index in range(start + 1, len(tokens)):
        if tokens[index].type == close and tokens[index].level == level:
            return index
    return len(tokens) - 1


def _prefixed(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join(
        (first if index == 0 else rest) + line if line or index == 0 else line
        for index, line in enumerate(lines)
    )


def _blocks(tokens: Sequence[Token], start: int, end: int) -> list[str]:
    blocks: list[str] = []
    index = start
    while index < end:
        token = tokens[index]
        kind = token.type
        if kind == "paragraph_open":
            blocks.append(_inline(tokens[index + 1].children))
            index += 3
            continue
        if kind == "heading_open":
            level = int(token.tag[1:]) if token.tag[1:].isdigit() else 1
            blocks.append("#" * level + " " + _inline(tokens[index + 1].children))
            index += 3
            continue
        if kind == "hr":
            blocks.append("---")
        elif kind in ("fence", "code_block"):
            info = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
            blocks.append(fenced(token.content, info if _LANGUAGE.fullmatch(info) else ""))
        elif kind == "math_block":
            blocks.append(f"$$\n{_math(token.content)}\n$$")
        elif kind == "blockquote_open":
            close = _closing(tokens, index)
            inner = "\n\n".join(_blocks(tokens, index + 1, close))
            blocks.append(_prefixed(inner, "> ", "> ").replace("\n\n", "\n>\n"))
            index = close
        elif kind in ("bullet_list_open", "ordered_list_open"):
            close = _closing(tokens, index)
            blocks.append(_list(tokens, index, close))
            index = close
        elif kind == "table_open":
            close = _closing(tokens, index)
            blocks.append(_table(tokens[index:close]))
            index = close
        index += 1
    return blocks


def _list(tokens: Sequence[Token], start: int, end: int) -> str:
    ordered = tokens[start].type == "ordered_list_open"
    number = int(str(tokens[start].attrGet("start") or 1)) if ordered else 0
    tight = all(t.hidden for t in tokens[start:end] if t.type == "paragraph_open")
    items = []
    index = start + 1
    while index < end:
        if tokens[index].type != "list_item_open":
            index += 1
            continue
        close = _closing(tokens, index)
        body = ("\n" if tight else "\n\n").join(_blocks(tokens, index + 1, close))
        if tokens[index + 1].type == "paragraph_open":  # a task box stays a task box
            source = tokens[index + 2].content
            if _TASK.match(source) and body.startswith(_escape(source[:4])):
                body = source[:4] + body[len(_escape(source[:4])) :]
        marker = f"{number}. " if ordered else "- "
        number += 1
        items.append(_prefixed(body, marker, " " * len(marker)))
        index = close + 1
    return ("\n" if tight else "\n\n").join(items)


def _table(tokens: Sequence[Token]) -> str:
    rows: list[list[str]] = []
    aligns: list[str] = []
    for index, token in enumerate(tokens):
        if token.type == "tr_open":
            rows.append([])
        elif token.type in ("th_open", "td_open"):
            cell = _inline(tokens[index + 1].children).replace("\n", " ")
            rows[-1].append(cell)
            if token.type == "th_open":
                align = str(token.attrGet("style") or "").removeprefix("text-align:")
                aligns.append({"left": ":--", "right": "--:", "center": ":-:"}.get(align, "---"))
    if not rows:
        return ""
    lines = ["| " + " | ".join(rows[0]) + " |", "| " + " | ".join(aligns) + " |"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows[1:])
    return "\n".join(lines)
