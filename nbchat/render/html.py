"""The chat panel's markup: bubbles, tool cards, the status line, a whole conversation (pure).

Every string put into markup here is untrusted (reply text, tool names,
arguments, results, error messages): reply Markdown goes through
:func:`~nbchat.render.markdown.markdown_to_html`, everything else through
:func:`html.escape`, and anything used in a class name (tool status, connection
state) is first mapped onto a fixed set. The styles live in ``render/chat.css``.
"""

from __future__ import annotations

import functools
import html
import json
import unicodedata
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from ..mentions import segments
from ..protocol import ToolCall, Usage
from ..redact import redact_text, redact_turn
from ..turn import Turn
from .markdown import StreamingMarkdown, markdown_to_html

__all__ = [
    "MAX_APPROVAL_TEXT",
    "MAX_TOOL_TEXT",
    "NO_RESULT",
    "STYLES",
    "STYLESHEET",
    "WAITING",
    "agent_state_html",
    "approval_text",
    "assistant_message_html",
    "confirm_question_html",
    "conversation_frame",
    "conversation_html",
    "copy_button_html",
    "error_banner_html",
    "reasoning_html",
    "saved_turn_html",
    "status_header_html",
    "stylesheet",
    "thinking_html",
    "tool_call_html",
    "tool_status",
    "tool_value_text",
    "turn_html",
    "usage_html",
    "user_message_html",
]

MAX_TOOL_TEXT = 20_000
"""Tool arguments and results longer than this many characters are cut when shown."""

STYLESHEET = Path(__file__).resolve().parent / "chat.css"
"""The panel's stylesheet, scoped to ``.nbchat``: a file of the package, for ``_css``."""


@functools.cache
def stylesheet() -> str:
    """The panel's stylesheet as text, read once, for HTML that must carry it inline."""
    return STYLESHEET.read_text(encoding="utf-8")


STYLES = f"<style>\n{stylesheet()}</style>"
"""Deprecated: the stylesheet as a ``<style>`` element, sent again with every panel.

Kept until the widget loads :data:`STYLESHEET` once (``_css``); use that, or
:func:`stylesheet` for HTML that must carry the styles inline."""


def user_message_html(
    text: str, mentions: Collection[str] = (), attached: Iterable[str] = ()
) -> str:
    """The user's message as an escaped, whitespace-preserving bubble; each ``@name`` of
    ``mentions`` (what the message carried as context) a chip, as inert as the rest; and
    under it a chip for each attachment (its name, type and size: untrusted, escaped)."""
    body = "".join(
        f'<span class="nbchat-mention">{html.escape(piece)}</span>' if chip else html.escape(piece)
        for piece, chip in segments(text, mentions)
    )
    chips = "".join(
        f'<span class="nbchat-attachment">{html.escape(line)}</span>' for line in attached
    )
    shown = f'<div class="nbchat-attachments">{chips}</div>' if chips else ""
    return f'<div class="nbchat-msg nbchat-user"><div class="nbchat-body">{body}</div>{shown}</div>'


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


def confirm_question_html(call: ToolCall, where: str | None = None) -> str:
    """The line asking whether to run a call waiting for approval (escaped)."""
    place = html.escape(where or _where(call) or "on the server")
    place = place if place.startswith("in ") else f"({place})"
    return (
        '<span class="nbchat-confirm-question">Run '
        f"<code>{html.escape(str(call.name))}</code> {place}?</span>"
    )


def copy_button_html(markdown: str) -> str:
    """A reply's Copy button, carrying the reply's Markdown (attribute-escaped, so inert).

    The text rides in the page, so copying works while the kernel is busy or gone.
    """
    return (
        '<div class="nbchat-actions">'
        '<button type="button" class="nbchat-copy" aria-label="Copy this reply as Markdown"'
        f' data-markdown="{html.escape(markdown, quote=True)}">Copy</button></div>'
    )


def thinking_html() -> str:
    """The sign of life between a message and its reply's first token or tool card."""
    return (
        '<div class="nbchat-thinking" role="status" aria-label="The assistant is thinking">'
        '<span class="nbchat-thinking-dots" aria-hidden="true">●●●</span> thinking…</div>'
    )


def reasoning_html(text: str, *, expanded: bool = False) -> str:
    """The model's reasoning as a "Thinking" block: a ``<details>``, open only while the
    model thinks and its answer has not started. Untrusted: escaped, shown as written."""
    is_open = " open" if expanded else ""
    return (
        f'<details class="nbchat-reasoning"{is_open}>'
        '<summary><span class="nbchat-reasoning-label">Thinking</span></summary>'
        f'<div class="nbchat-reasoning-body">{html.escape(text)}</div></details>'
    )


def usage_html(usage: Usage) -> str:
    """The small line under a reply saying what it cost in tokens."""
    counts = [
        f"{value:,} {name}"
        for name, value in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
        )
        if value is not None
    ]
    return f'<div class="nbchat-usage">{html.escape(" · ".join(counts))} tokens</div>'


def error_banner_html(text: str) -> str:
    """An error line, escaped, announced to screen readers."""
    return (
        '<div class="nbchat-error" role="alert">'
        '<span class="nbchat-error-icon" aria-hidden="true">⚠</span> '
        f'<span class="nbchat-error-text">{html.escape(text)}</span></div>'
    )


_TOOL_STATUS = {"running": "running…", "done": "done", "error": "error"}
"""Each status a server sends, and its verb. The icon before it is drawn by CSS
(``.nbchat-tool-icon``): no glyph that needs an emoji font."""

WAITING = "waiting for your approval"
"""The verb of a card whose call waits for the person's Run or Deny."""
NO_RESULT = "ended without a result"
"""The verb of a call still running when its reply ended normally (an odd server)."""
MAX_APPROVAL_TEXT = 1_000_000
"""Arguments waiting for approval are shown in full up to this many characters."""

_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
"""Character categories that show nothing, or reorder what follows (bidi controls)."""


def tool_status(call: ToolCall) -> str:
    """The call's status as one of the known ones (an unknown one shows as running)."""
    status = call.status
    return status if isinstance(status, str) and status in _TOOL_STATUS else "running"


def tool_value_text(value: Any, limit: int = MAX_TOOL_TEXT) -> str:
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


def approval_text(arguments: Any) -> str:
    """Arguments as a person approves them: pretty JSON, every invisible character shown.

    A control, zero-width or bidi character (U+202E and the like) is written as
    its ``\\uXXXX`` escape, so what is shown is what runs; the text is cut only past
    :data:`MAX_APPROVAL_TEXT`, and then says so.
    """
    text = tool_value_text(arguments, limit=MAX_APPROVAL_TEXT)
    return "".join(
        f"\\u{ord(c):04x}" if c != "\n" and unicodedata.category(c) in _INVISIBLE else c
        for c in text
    )


def _where(call: ToolCall) -> str | None:
    return "in this kernel" if call.runs_in == "client" else None


def tool_call_html(
    call: ToolCall,
    *,
    where: str | None = None,
    waiting: bool = False,
    ended: str | None = None,
    shown: str | None = None,
) -> str:
    """A collapsible card for one tool call: status, name, where it runs, arguments, result.

    ``where`` says where the call runs ("MCP: time"); a call of the notebook's own
    function (``runs_in="client"``) says "in this kernel" without it. A running call
    ``waiting`` for approval says so, open, its arguments in full (:func:`approval_text`);
    a running call whose reply ended says ``ended`` (how the turn ended, or why the
    call will not run) instead of "running". ``shown`` is a done call's rich result as
    :func:`nbchat.render.rich.rich_result` made it (a table, an image; never other markup),
    shown instead of the text the model read, the card open.
    """
    status = tool_status(call)
    verb = _TOOL_STATUS[status]
    css = status
    if status == "running" and waiting:
        css, verb = "waiting", WAITING
    elif status == "running" and ended:
        css, verb = "ended", ended
    rich = shown is not None and status == "done"
    is_open = " open" if css in ("error", "waiting") or rich else ""  # a view is there to see
    place = where or _where(call)
    where_html = f' <span class="nbchat-tool-where">{html.escape(place)}</span>' if place else ""
    parts = [
        f'<details class="nbchat-tool nbchat-tool-{css}"{is_open}>',
        '<summary><span class="nbchat-tool-icon" aria-hidden="true"></span> '
        f'<span class="nbchat-tool-name">{html.escape(str(call.name))}</span> '
        f'<span class="nbchat-tool-verb">{html.escape(verb)}</span>{where_html}</summary>',
    ]
    if css == "waiting":
        parts.append('<div class="nbchat-tool-label">arguments, in full</div>')
        shown = approval_text(call.arguments)
        parts.append(f'<pre class="nbchat-tool-args"><code>{html.escape(shown)}</code></pre>')
    elif call.arguments:
        parts.append('<div class="nbchat-tool-label">arguments</div>')
        parts.append(f"<pre><code>{html.escape(tool_value_text(call.arguments))}</code></pre>")
    if rich:
        parts.append(f'<div class="nbchat-tool-label">result</div>{shown}')
    elif call.result is not None:
        label = "error" if status == "error" else "result"
        parts.append(f'<div class="nbchat-tool-label">{label}</div>')
        parts.append(f"<pre><code>{html.escape(tool_value_text(call.result))}</code></pre>")
    parts.append("</details>")
    return "".join(parts)


_CONNECTION_LABELS = {
    "connected": "connected",
    "connecting": "connecting…",
    "reconnecting": "reconnecting…",
    "disconnected": "disconnected",
    "closed": "closed",
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


def turn_html(turn: Turn) -> str:
    """One turn as the panel shows it: the user bubble, then text and tool cards in order."""
    parts = [
        '<div class="nbchat-turn">',
        user_message_html(turn.user, turn.mentions, turn.attached),
    ]
    if turn.reasoning:
        parts.append(reasoning_html(turn.reasoning))
    for segment in turn.segments():
        if isinstance(segment, str):
            parts.append(assistant_message_html(segment))
        else:  # a call the reply left running says how the reply ended
            shown = turn.shown.get(segment.id)
            parts.append(tool_call_html(segment, ended=turn.note or NO_RESULT, shown=shown))
    if turn.error is not None:
        parts.append(error_banner_html(f"{turn.error.code}: {turn.error.message}"))
    if turn.blank:
        parts.append(assistant_message_html(""))  # the one rule: Turn.blank
    note = turn.note
    if note:
        parts.append(f'<div class="nbchat-note">{html.escape(note)}</div>')
    if turn.usage is not None:
        parts.append(usage_html(turn.usage))
    parts.append("</div>")
    return "".join(parts)


def conversation_html(turns: Iterable[Turn], *, title: str = "", styles: bool = True) -> str:
    """A whole conversation as the panel shows it, for a notebook's HTML repr.

    ``title`` (escaped) heads it as the panel's status line does; ``styles``
    inlines the stylesheet, since a static HTML output has no widget to load it.
    A saved output, so every turn is redacted (:func:`saved_turn_html`).
    """
    return conversation_frame(map(saved_turn_html, turns), title=title, styles=styles)


def saved_turn_html(turn: Turn) -> str:
    """One turn as a saved copy holds it: redacted whole (:func:`nbchat.redact.redact_turn`).

    A piece of :func:`conversation_frame`: a copy that is updated after each
    reply renders only the turns that changed and keeps the others' pieces.
    """
    return turn_html(redact_turn(turn))


def conversation_frame(pieces: Iterable[str], *, title: str = "", styles: bool = True) -> str:
    """The conversation around its turns' pieces (:func:`saved_turn_html`), written once."""
    parts = ['<div class="nbchat nbchat-transcript">']
    if styles:
        parts.append(f"<style>{stylesheet()}</style>")
    if title:
        parts.append(f'<div class="nbchat-status">{html.escape(redact_text(title))}</div>')
    parts.extend(pieces)
    parts.append("</div>")
    return "".join(parts)


def agent_state_html(state: Any, *, expanded: bool = False) -> str:
    """An AG-UI agent's shared state as a collapsible "Agent state" block: pretty-printed
    JSON, credentials redacted, cut at :data:`MAX_TOOL_TEXT`, escaped (untrusted)."""
    is_open = " open" if expanded else ""
    text = redact_text(tool_value_text(state))
    return (
        f'<details class="nbchat-agent-state"{is_open}>'
        '<summary><span class="nbchat-agent-state-label">Agent state</span></summary>'
        f"<pre><code>{html.escape(text)}</code></pre></details>"
    )
