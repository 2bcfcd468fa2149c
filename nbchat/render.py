"""Untrusted chat content -> safe HTML for the widget, and Markdown / text fallbacks (pure).

Everything that comes from the model, the user or a tool (reply text, tool names,
arguments, results, error messages) is untrusted and must never become active
HTML. Two rules keep it inert:

* Markdown (the model's replies) is rendered by markdown-it with raw HTML
  disabled, then cleaned by nh3 (ammonia) with an explicit allow-list of tags,
  attributes and URL schemes. The renderer alone would already escape raw
  HTML; the sanitizer is there so that a bug or a plugin in the renderer still
  cannot let a ``<script>``, an ``on*`` handler or a ``javascript:`` URL through.
* Every other string is plain text and goes through :func:`html.escape` into
  markup we write ourselves; anything used in a class name (tool status,
  connection state) is first mapped onto a fixed set.

Images in replies are rendered as links labelled by their alt text: a remote
image loads the moment a reply is shown, which would let a prompt-injected
model leak data through its URL. Links open in a new tab (``target="_blank"``
with ``rel="noopener noreferrer nofollow"``) because following one in place
would navigate the JupyterLab page away.

The text/markdown fallback (:func:`conversation_markdown`, for nbconvert and
static viewers) cannot rely on the viewer to sanitize: nbconvert and a trusted
notebook in JupyterLab pass raw HTML in Markdown through. So model replies are
embedded as the same sanitized HTML the widget shows, collapsed to one line and
with Markdown punctuation in its text turned into character references, so a
Markdown renderer passes it through untouched whether it treats it as an HTML
block or as inline HTML. User text, tool names and errors are escaped to
literal Markdown; tool arguments and results go into fenced code blocks whose
fence is longer than any backtick run inside. The raw Markdown of each reply
stays readable in :func:`conversation_text`.

Cost: one render is linear in the text. While a reply streams in, the widget
re-renders it many times, which would make a long reply quadratic;
:class:`StreamingMarkdown` keeps the HTML of the top-level blocks that can no
longer change and re-parses only the unfinished end.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from .protocol import ToolCall

__all__ = [
    "MAX_TOOL_TEXT",
    "STYLES",
    "StreamingMarkdown",
    "Turn",
    "assistant_message_html",
    "conversation_markdown",
    "conversation_text",
    "error_banner_html",
    "markdown_to_html",
    "status_header_html",
    "tool_call_html",
    "user_message_html",
]

MAX_TOOL_TEXT = 20_000
"""Tool arguments and results longer than this many characters are cut when shown."""


# Markdown -> sanitized HTML


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


def _normalize(text: str) -> str:
    # What markdown-it's own "normalize" rule does, so line numbers match our slices.
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
        text = _normalize(text)
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


# Widget markup


def user_message_html(text: str) -> str:
    """The user's message as an escaped, whitespace-preserving bubble."""
    return (
        '<div class="nbchat-msg nbchat-user">'
        f'<div class="nbchat-body">{html.escape(text)}</div></div>'
    )


def assistant_message_html(
    text: str, streaming: bool = False, *, renderer: StreamingMarkdown | None = None
) -> str:
    """The model's reply rendered from Markdown; ``streaming`` adds a cursor.

    Pass the reply's :class:`StreamingMarkdown` as ``renderer`` while it
    streams; the final call (``streaming=False``) always renders in full.
    """
    if streaming:
        body = renderer.render(text) if renderer is not None else markdown_to_html(text)
        return (
            '<div class="nbchat-msg nbchat-assistant nbchat-streaming" aria-busy="true">'
            f'<div class="nbchat-body">{body}</div></div>'
        )
    return (
        '<div class="nbchat-msg nbchat-assistant">'
        f'<div class="nbchat-body">{markdown_to_html(text)}</div></div>'
    )


def error_banner_html(text: str) -> str:
    """An error line, escaped, announced to screen readers."""
    return (
        '<div class="nbchat-error" role="alert">'
        '<span class="nbchat-error-icon" aria-hidden="true">⚠</span> '
        f'<span class="nbchat-error-text">{html.escape(text)}</span></div>'
    )


_TOOL_STATUS = {
    "running": ("⏳", "running…"),
    "done": ("✓", "done"),
    "error": ("✗", "error"),
}


def _tool_status(call: ToolCall) -> str:
    status = call.status
    return status if isinstance(status, str) and status in _TOOL_STATUS else "running"


def _display(value: Any, limit: int = MAX_TOOL_TEXT) -> str:
    """A tool value as text: strings as they are, anything else as indented JSON."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    if len(text) > limit:
        text = f"{text[:limit]}\n… ({len(text) - limit} more characters)"
    return text


def tool_call_html(call: ToolCall) -> str:
    """A collapsible card for one tool call: status, name, arguments and result."""
    status = _tool_status(call)
    icon, verb = _TOOL_STATUS[status]
    is_open = " open" if status == "error" else ""
    parts = [
        f'<details class="nbchat-tool nbchat-tool-{status}"{is_open}>',
        f'<summary><span class="nbchat-tool-icon" aria-hidden="true">{icon}</span> '
        f'<span class="nbchat-tool-name">{html.escape(str(call.name))}</span> '
        f'<span class="nbchat-tool-verb">{verb}</span></summary>',
    ]
    if call.arguments:
        parts.append('<div class="nbchat-tool-label">arguments</div>')
        parts.append(f"<pre><code>{html.escape(_display(call.arguments))}</code></pre>")
    if call.result is not None:
        label = "error" if status == "error" else "result"
        parts.append(f'<div class="nbchat-tool-label">{label}</div>')
        parts.append(f"<pre><code>{html.escape(_display(call.result))}</code></pre>")
    parts.append("</details>")
    return "".join(parts)


_CONNECTION_LABELS = {
    "connected": "connected",
    "connecting": "connecting…",
    "reconnecting": "reconnecting…",
    "disconnected": "disconnected",
}


def status_header_html(state: str, detail: str = "") -> str:
    """The connection line: a coloured dot, the state and a detail such as "attempt 2 of 5".

    ``state`` may also be a string enum member; an unknown state gets a grey dot.
    """
    key = str(getattr(state, "value", state))
    css = key if key in _CONNECTION_LABELS else "unknown"
    label = _CONNECTION_LABELS.get(key, key)
    detail_html = f' <span class="nbchat-detail">{html.escape(detail)}</span>' if detail else ""
    return (
        f'<div class="nbchat-status nbchat-status-{css}" role="status">'
        '<span class="nbchat-dot" aria-hidden="true"></span> '
        f'<span class="nbchat-state">{html.escape(label)}</span>{detail_html}</div>'
    )


STYLES = """<style>
.nbchat {
  --nbchat-fg: var(--jp-ui-font-color1, #212121);
  --nbchat-muted: var(--jp-ui-font-color2, #616161);
  --nbchat-bg: var(--jp-layout-color1, #fff);
  --nbchat-code-bg: var(--jp-layout-color2, #eee);
  --nbchat-border: var(--jp-border-color2, #e0e0e0);
  --nbchat-accent: var(--jp-brand-color1, #1976d2);
  --nbchat-ok: var(--jp-success-color1, #388e3c);
  --nbchat-warn: var(--jp-warn-color1, #f57c00);
  --nbchat-bad: var(--jp-error-color1, #d32f2f);
  color: var(--nbchat-fg);
  font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: var(--jp-content-font-size1, 14px);
  line-height: 1.45;
}
.nbchat .jupyter-widget-html > .jupyter-widget-html-content,
.nbchat .widget-html > .widget-html-content {
  line-height: 1.45; /* ipywidgets sets a one-line 28px height for inline labels */
}
.nbchat .nbchat-msg { display: flex; margin: 6px 0; }
.nbchat .nbchat-body {
  max-width: 85%; padding: 6px 10px; border-radius: 10px; overflow-x: auto;
  border: 1px solid var(--nbchat-border); background: var(--nbchat-bg);
}
.nbchat .nbchat-user { justify-content: flex-end; }
.nbchat .nbchat-user .nbchat-body {
  white-space: pre-wrap; overflow-wrap: anywhere;
  background: rgba(25, 118, 210, 0.12);
  background: color-mix(in srgb, var(--nbchat-accent) 14%, var(--nbchat-bg));
}
.nbchat .nbchat-assistant { justify-content: flex-start; }
.nbchat .nbchat-body > :first-child { margin-top: 0; }
.nbchat .nbchat-body > :last-child { margin-bottom: 0; }
.nbchat .nbchat-body h1, .nbchat .nbchat-body h2, .nbchat .nbchat-body h3 { font-size: 1.15em; }
.nbchat .nbchat-body h4, .nbchat .nbchat-body h5, .nbchat .nbchat-body h6 { font-size: 1em; }
.nbchat code, .nbchat pre { font-family: var(--jp-code-font-family, monospace); font-size: 0.92em; }
.nbchat .nbchat-body code { background: var(--nbchat-code-bg); border-radius: 3px; padding: 0 3px; }
.nbchat pre {
  background: var(--nbchat-code-bg); padding: 6px 8px; border-radius: 6px;
  overflow-x: auto; white-space: pre;
}
.nbchat pre code { background: none; padding: 0; }
.nbchat blockquote {
  margin: 4px 0; padding-left: 10px; color: var(--nbchat-muted);
  border-left: 3px solid var(--nbchat-border);
}
.nbchat table { border-collapse: collapse; }
.nbchat th, .nbchat td { border: 1px solid var(--nbchat-border); padding: 2px 6px; }
.nbchat a { color: var(--jp-content-link-color, var(--nbchat-accent)); }
.nbchat .nbchat-streaming .nbchat-body > :last-child::after,
.nbchat .nbchat-streaming .nbchat-body:empty::after {
  content: "▍"; color: var(--nbchat-muted); animation: nbchat-blink 1s steps(2) infinite;
}
.nbchat .nbchat-tool {
  margin: 4px 0; padding: 4px 8px; max-width: 85%; border-radius: 6px;
  border: 1px solid var(--nbchat-border); border-left: 3px solid var(--nbchat-warn);
}
.nbchat .nbchat-tool-done { border-left-color: var(--nbchat-ok); }
.nbchat .nbchat-tool-error { border-left-color: var(--nbchat-bad); }
.nbchat .nbchat-tool summary { cursor: pointer; color: var(--nbchat-muted); }
.nbchat .nbchat-tool-name {
  font-family: var(--jp-code-font-family, monospace); color: var(--nbchat-fg);
}
.nbchat .nbchat-tool-error .nbchat-tool-verb { color: var(--nbchat-bad); }
.nbchat .nbchat-tool-label { margin-top: 4px; font-size: 0.85em; color: var(--nbchat-muted); }
.nbchat .nbchat-tool pre { max-height: 20em; overflow: auto; margin: 2px 0; }
.nbchat .nbchat-status { display: flex; align-items: center; gap: 6px; color: var(--nbchat-muted); }
.nbchat .nbchat-dot {
  display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  background: var(--nbchat-muted);
}
.nbchat .nbchat-status-connected .nbchat-dot { background: var(--nbchat-ok); }
.nbchat .nbchat-status-connecting .nbchat-dot,
.nbchat .nbchat-status-reconnecting .nbchat-dot {
  background: var(--nbchat-warn); animation: nbchat-blink 1.2s ease-in-out infinite;
}
.nbchat .nbchat-status-disconnected .nbchat-dot { background: var(--nbchat-bad); }
.nbchat .nbchat-error {
  margin: 6px 0; padding: 6px 10px; border-radius: 6px; color: var(--nbchat-bad);
  border: 1px solid var(--nbchat-bad);
  background: rgba(211, 47, 47, 0.08);
  background: color-mix(in srgb, var(--nbchat-bad) 10%, var(--nbchat-bg));
}
.nbchat .nbchat-controls { display: flex; gap: 6px; margin-top: 6px; }
.nbchat .nbchat-input {
  flex: 1; min-width: 0; height: 28px; box-sizing: border-box; padding: 4px 8px;
  font: inherit; color: var(--nbchat-fg);
  background: var(--jp-input-background, var(--nbchat-bg));
  border: 1px solid var(--jp-border-color1, #bdbdbd); border-radius: 2px;
}
.nbchat .nbchat-input:focus { outline: 1px solid var(--nbchat-accent); outline-offset: -1px; }
.nbchat .nbchat-controls button { min-width: 5em; }
.nbchat .nbchat-controls button[hidden] { display: none; }
@keyframes nbchat-blink { 50% { opacity: 0.2; } }
@media (prefers-reduced-motion: reduce) {
  .nbchat * { animation: none !important; }
}
</style>"""
"""The panel's stylesheet, scoped to ``.nbchat``; written here, so trusted.

Shown once per panel (its own HTML child); the panel's root needs the ``nbchat`` class.
"""


# Static fallbacks


@dataclass
class Turn:
    """One exchange of a conversation, as the fallbacks show it."""

    user: str
    """What the user typed: shown literally."""
    assistant: str = ""
    """The reply's Markdown: rendered and sanitized."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Shown before the reply: the model calls its tools, then answers."""
    error: str | None = None
    """Why the reply failed, if it did: shown literally."""


_MD_LITERAL = re.compile(r"[\\`*_\[\]<>&~|$]")
_MD_LINE_START = re.compile(r"^([#+=-]|\d+[.)])")
_MD_TEXT_ACTIVE = re.compile(r"[\\`*_\[\]()!~|$]")
_HTML_TAG = re.compile(r'(<(?:[^>"]|"[^"]*")*>)')


def _markdown_literal(text: str, *, one_line: bool = False) -> str:
    """Text as Markdown that renders to exactly that text: no markup, HTML or links."""
    if one_line:
        text = " ".join(text.split())
    lines = []
    for raw in _normalize(text).split("\n"):
        stripped = raw.lstrip(" \t")
        if not stripped:
            lines.append("")
            continue
        indent = raw[: len(raw) - len(stripped)].replace("\t", "    ")
        line = _MD_LITERAL.sub(r"\\\g<0>", stripped)
        line = _MD_LINE_START.sub(lambda m: m.group()[:-1] + "\\" + m.group()[-1], line)
        lines.append("&nbsp;" * len(indent) + line)
    # A backslash at the end of a line is a hard line break; blank lines stay paragraph breaks.
    return "\n".join(
        f"{line}\\" if line and index + 1 < len(lines) and lines[index + 1] else line
        for index, line in enumerate(lines)
    )


def _html_for_markdown(fragment: str) -> str:
    """Make sanitized HTML pass through any Markdown renderer unchanged.

    One line, so it is a single HTML block; Markdown punctuation in text
    becomes character references, so it stays text even where a renderer
    parses the line as inline content.
    """
    parts = _HTML_TAG.split(fragment)
    for index in range(0, len(parts), 2):
        parts[index] = _MD_TEXT_ACTIVE.sub(lambda m: f"&#{ord(m.group())};", parts[index])
    return "".join(parts).replace("\n", "&#10;")


def _fenced(text: str, info: str) -> str:
    runs = re.findall(r"`+", text)
    fence = "`" * max(3, 1 + max((len(run) for run in runs), default=0))
    return f"{fence}{info}\n{_normalize(text)}\n{fence}"


def _tool_call_markdown(call: ToolCall) -> str:
    status = _tool_status(call)
    parts = [f"**Tool call** {_markdown_literal(str(call.name), one_line=True)} · {status}"]
    if call.arguments:
        parts.append("Arguments:\n" + _fenced(_display(call.arguments), "json"))
    if call.result is not None:
        label = "Error" if status == "error" else "Result"
        info = "" if isinstance(call.result, str) else "json"
        parts.append(f"{label}:\n" + _fenced(_display(call.result), info))
    return "\n\n".join(parts)


def conversation_markdown(turns: Iterable[Turn]) -> str:
    """The conversation as Markdown for static viewers, safe even where raw HTML passes.

    Empty when there are no turns, so a caller can fall back with ``or``.
    """
    blocks: list[str] = []
    for turn in turns:
        if blocks:
            blocks.append("---")
        blocks.append("**You**")
        blocks.append(_blockquote(_markdown_literal(turn.user)))
        blocks.extend(_tool_call_markdown(call) for call in turn.tool_calls)
        if turn.assistant:
            blocks.append("**Assistant**")
            blocks.append(
                _html_for_markdown(
                    '<div class="nbchat-msg nbchat-assistant">'
                    f"{markdown_to_html(turn.assistant)}</div>"
                )
            )
        if turn.error:
            blocks.append(_blockquote("**Error:** " + _markdown_literal(turn.error)))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _blockquote(markdown: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in markdown.split("\n"))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain(text: str) -> str:
    # Terminal control sequences could recolour or hide text in a text/plain view.
    return _CONTROL.sub("", _normalize(text))


def _indented(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in _plain(text).split("\n"))


def conversation_text(turns: Iterable[Turn]) -> str:
    """The conversation as plain text, replies kept as their Markdown source ("" if none)."""
    blocks: list[str] = []
    for turn in turns:
        lines = [f"You: {_plain(turn.user)}"]
        for call in turn.tool_calls:
            lines.append(f"[tool {_plain(str(call.name))}: {_tool_status(call)}]")
            if call.arguments:
                lines.append("  arguments:")
                lines.append(_indented(_display(call.arguments)))
            if call.result is not None:
                lines.append("  result:")
                lines.append(_indented(_display(call.result)))
        if turn.assistant:
            lines.append(f"Assistant: {_plain(turn.assistant)}")
        if turn.error:
            lines.append(f"Error: {_plain(turn.error)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else ""
