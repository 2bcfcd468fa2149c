"""Untrusted chat content -> safe HTML for the widget, and Markdown / text exports (pure).

Everything that comes from the model, the user or a tool (reply text, tool
names, arguments, results, error messages) is untrusted and must never become
active HTML. :mod:`~nbchat.render.markdown` renders reply Markdown to sanitized
HTML (raw HTML off, an nh3 allow-list after it); :mod:`~nbchat.render.html`
writes the panel's markup around it and escapes everything else;
:mod:`~nbchat.render.export` is the one exporter to Markdown and plain text,
for the widget's fallbacks, ``%chat`` and transcripts alike. All of them read
the one turn type, :class:`nbchat.turn.Turn`.
"""

from __future__ import annotations

from ..turn import Turn
from .export import conversation_markdown, conversation_text, turn_markdown
from .html import (
    MAX_TOOL_TEXT,
    STYLES,
    STYLESHEET,
    assistant_message_html,
    confirm_question_html,
    conversation_html,
    copy_button_html,
    error_banner_html,
    status_header_html,
    stylesheet,
    tool_call_html,
    turn_html,
    user_message_html,
)
from .markdown import StreamingMarkdown, markdown_to_html

__all__ = [
    "MAX_TOOL_TEXT",
    "STYLES",
    "STYLESHEET",
    "StreamingMarkdown",
    "Turn",
    "assistant_message_html",
    "confirm_question_html",
    "conversation_html",
    "conversation_markdown",
    "conversation_text",
    "copy_button_html",
    "error_banner_html",
    "markdown_to_html",
    "status_header_html",
    "stylesheet",
    "tool_call_html",
    "turn_html",
    "turn_markdown",
    "user_message_html",
]
