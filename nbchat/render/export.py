"""The one exporter of conversations to Markdown and plain text (pure).

It serves the widget's text fallbacks, ``%chat``'s output and every transcript
export (:meth:`~nbchat.Transcript.to_markdown`, ``to_notebook``, ``to_text``),
all from :class:`~nbchat.turn.Turn`, so a conversation reads the same wherever
it is shown, tool calls where they happened.

The exports are real Markdown, which renders on GitHub and in JupyterLab's
Markdown cells, yet Markdown for static viewers cannot rely on the viewer to
sanitize: nbconvert and a trusted notebook in JupyterLab pass raw HTML in
Markdown through. So a model's reply is parsed as the widget parses it and
written back from its tokens (:func:`~nbchat.render.rewrite.safe_markdown`):
fenced code, pipe tables, lists, links, ``$…$`` math, and no raw HTML or
unsafe link. User text, tool names and errors
are escaped to literal Markdown; tool arguments and results go into fenced code
blocks whose fence is longer than any backtick run inside. The raw Markdown of
each reply stays readable in :func:`conversation_text`, whose control
characters are removed so printing it cannot drive a terminal.

Every export is durable text, so each turn is redacted first, as assembled
(:func:`nbchat.redact.redact_turn`): a secret split across token frames is
caught in the text they join into.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..protocol import ToolCall
from ..redact import redact_turn
from ..turn import Turn
from .html import tool_status, tool_value_text
from .markdown import normalize_newlines
from .rewrite import fenced, safe_markdown

__all__ = [
    "conversation_markdown",
    "conversation_text",
    "markdown_literal",
    "text_frame",
    "turn_markdown",
    "turn_text",
]


_MD_LITERAL = re.compile(r"[\\`*_\[\]<>&~|$]")
_MD_LINE_START = re.compile(r"^([#+=-]|\d+[.)])")


def markdown_literal(text: str, *, one_line: bool = False) -> str:
    """Text as Markdown that renders to exactly that text: no markup, HTML or links."""
    if one_line:
        text = " ".join(text.split())
    lines = []
    for raw in normalize_newlines(text).split("\n"):
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


def _tool_call_markdown(call: ToolCall) -> str:
    status = tool_status(call)
    parts = [f"**Tool call** {markdown_literal(str(call.name), one_line=True)} · {status}"]
    if call.arguments:
        parts.append("Arguments:\n" + fenced(tool_value_text(call.arguments), "json"))
    if call.result is not None:
        label = "Error" if status == "error" else "Result"
        info = "" if isinstance(call.result, str) else "json"
        parts.append(f"{label}:\n" + fenced(tool_value_text(call.result), info))
    return "\n\n".join(parts)


def turn_markdown(turn: Turn) -> str:
    """One turn as Markdown blocks: the user's text, then replies and tool calls in order."""
    turn = redact_turn(turn)
    blocks = ["**You**", _blockquote(markdown_literal(turn.user))]
    if turn.attached:
        named = ", ".join(markdown_literal(line) for line in turn.attached)
        blocks.append(_blockquote(f"*Attached:* {named}"))
    if turn.reasoning:
        blocks.append(_blockquote("*Thinking:* " + markdown_literal(turn.reasoning)))
    labelled = False
    for segment in turn.segments():
        if isinstance(segment, str):
            if not labelled:
                blocks.append("**Assistant**")
                labelled = True
            blocks.append(safe_markdown(segment))
        else:
            blocks.append(_tool_call_markdown(segment))
    if turn.error is not None:
        error = f"{turn.error.code}: {turn.error.message}"
        blocks.append(_blockquote("**Error:** " + markdown_literal(error)))
    note = turn.note
    if note:
        blocks.append(f"*{markdown_literal(note, one_line=True)}*")
    return "\n\n".join(blocks)


def conversation_markdown(turns: Iterable[Turn]) -> str:
    """The conversation as Markdown for static viewers, safe even where raw HTML passes.

    Empty when there are no turns, so a caller can fall back with ``or``.
    """
    blocks = [turn_markdown(turn) for turn in turns]
    return "\n\n---\n\n".join(blocks) + "\n" if blocks else ""


def _blockquote(markdown: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in markdown.split("\n"))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain(text: str) -> str:
    # Terminal control sequences could recolour or hide text in a text/plain view.
    return _CONTROL.sub("", normalize_newlines(text))


def _indented(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in _plain(text).split("\n"))


def conversation_text(turns: Iterable[Turn]) -> str:
    """The conversation as plain text, replies kept as their Markdown source ("" if none)."""
    return text_frame(map(turn_text, turns))


def text_frame(pieces: Iterable[str]) -> str:
    """The plain-text conversation around its turns' pieces (:func:`turn_text`)."""
    blocks = list(pieces)
    return "\n\n".join(blocks) + "\n" if blocks else ""


def turn_text(turn: Turn) -> str:
    """One turn as plain text, redacted whole: a piece of :func:`conversation_text`."""
    turn = redact_turn(turn)
    lines = [f"You: {_plain(turn.user)}"]
    if turn.attached:
        lines.append(f"Attached: {_plain(', '.join(turn.attached))}")
    if turn.reasoning:
        lines.append("Thinking:")
        lines.append(_indented(turn.reasoning))
    for segment in turn.segments():
        if isinstance(segment, str):
            lines.append(f"Assistant: {_plain(segment)}")
            continue
        lines.append(f"[tool {_plain(str(segment.name))}: {tool_status(segment)}]")
        if segment.arguments:
            lines.append("  arguments:")
            lines.append(_indented(tool_value_text(segment.arguments)))
        if segment.result is not None:
            lines.append("  result:")
            lines.append(_indented(tool_value_text(segment.result)))
    if turn.error is not None:
        lines.append(f"Error: {_plain(turn.error.code)}: {_plain(turn.error.message)}")
    note = turn.note
    if note:
        lines.append(note)
    return "\n".join(lines)
