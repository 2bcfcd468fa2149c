"""The one exporter: conversations as Markdown and plain text, tool calls where they happened."""

from __future__ import annotations

import pytest

from nbchat.protocol import ErrorInfo, TokenMessage, ToolCall, ToolCallMessage, ToolResultMessage
from nbchat.render import (
    conversation_html,
    conversation_markdown,
    conversation_text,
)
from nbchat.reply import Reply, ReplyBuilder
from nbchat.turn import Turn

from .audit import permissive_markdown, text_of, tool_call

pytestmark = pytest.mark.unit

# Fallbacks


TURNS = [
    Turn(
        user="What is `x<y`?\n# not a heading\n    indented\n1. not a list",
        assistant="It is **true**.\n\n```\n[x](javascript:alert(1))\n\n```\n",
        tool_calls=[
            tool_call(arguments={"q": "x<y"}, status="done", result="``` ```` fence `"),
        ],
        error=ErrorInfo(code="failed", message="bad\nthing <x>"),
    ),
    Turn(user="again", assistant="ok"),
]


def test_conversation_markdown_layout() -> None:
    """The Markdown fallback labels each part and separates turns with a rule."""
    out = conversation_markdown(TURNS)
    assert out.count("**You**") == 2
    assert out.count("**Assistant**") == 2
    assert "**Tool call** search · done" in out
    assert "\n\n---\n\n" in out
    assert "> **Error:** failed: bad\\\n> thing \\<x\\>" in out


def test_conversation_markdown_fences_outlast_backticks() -> None:
    """A tool result's backtick runs cannot close the fence it is shown in."""
    out = conversation_markdown(TURNS)
    assert "Result:\n`````\n``` ```` fence `\n`````" in out


def test_conversation_markdown_user_text_is_literal() -> None:
    """The user's text comes back exactly as typed from any CommonMark renderer."""
    user = TURNS[0].user
    rendered = permissive_markdown(conversation_markdown([Turn(user=user)]))
    assert text_of(rendered) == "You " + " ".join(user.split())


def test_conversation_markdown_reply_matches_widget() -> None:
    """The reply written as Markdown renders to the same text as its source does."""
    reply = TURNS[0].assistant
    rendered = permissive_markdown(conversation_markdown([Turn(user="u", assistant=reply)]))
    assert text_of(rendered) == "You u Assistant " + text_of(permissive_markdown(reply))


def test_conversation_markdown_reply_is_real_markdown() -> None:
    """Code stays a fence, tables pipe tables, math dollars, lists lists: no HTML at all."""
    reply = (
        "Use `np`:\n\n```python\nx = a < b\n```\n\n| a | b |\n|--:|---|\n| 1 | 2 |\n\n"
        "- [ ] todo\n- item with $x^2$ and \\(y\\,z\\)\n\n$$\n\\frac{1}{2}\n$$\n\n"
        "It costs $5 and $10. [docs](https://example.org/a) ![plot](https://example.org/p.png)"
    )
    out = conversation_markdown([Turn(user="u", assistant=reply)])
    assert "```python\nx = a < b\n```" in out
    assert "| a | b |\n| --: | --- |\n| 1 | 2 |" in out
    assert "- [ ] todo\n- item with $x^2$ and $y\\,z$" in out
    assert "$$\n\\frac{1}{2}\n$$" in out
    assert "It costs \\$5 and \\$10." in out
    assert "[docs](<https://example.org/a>) [plot](<https://example.org/p.png>)" in out
    assert "<div" not in out and "&#" not in out


def test_conversation_markdown_reply_drops_unsafe_links() -> None:
    """A link with a scheme the widget refuses keeps only its text, even for a careless viewer."""
    reply = "[a](javascript:alert(1)) [b](https://ok.example) <script>alert(1)</script>"
    shown = permissive_markdown(conversation_markdown([Turn(user="u", assistant=reply)]))
    assert 'href="javascript' not in shown.lower()
    assert "[a](javascript:alert(1))" in text_of(shown)
    assert "<script" not in shown and 'href="https://ok.example"' in shown


def test_tool_calls_are_readable_json_blocks() -> None:
    """A tool call shows its name, then arguments and result in fenced json blocks."""
    call = tool_call(arguments={"city": "Paris"}, status="done", result={"temp": 21})
    out = conversation_markdown([Turn(user="u", tool_calls=[call])])
    assert "**Tool call** search · done" in out
    assert 'Arguments:\n```json\n{\n  "city": "Paris"\n}\n```' in out
    assert 'Result:\n```json\n{\n  "temp": 21\n}\n```' in out


def test_conversation_text_keeps_markdown_source() -> None:
    """The text fallback shows replies as their Markdown source and tools indented."""
    out = conversation_text(TURNS)
    assert "You: What is `x<y`?" in out
    assert "[tool search: done]" in out
    assert '      "q": "x<y"' in out
    assert "Assistant: It is **true**." in out
    assert "Error: failed: bad\nthing <x>" in out


def test_conversation_text_strips_terminal_controls() -> None:
    """ANSI escapes and other control characters from the model are removed."""
    out = conversation_text([Turn(user="hi", assistant="\x1b[8mhidden\x1b[0m\ttab\r\nnext")])
    assert "Assistant: [8mhidden[0m\ttab\nnext" in out
    assert "\x1b" not in out


def interleaved() -> Turn:
    """A turn whose reply says something, calls a tool, then says more, as it arrived."""
    running = tool_call(arguments={"q": "x"})
    done = running.model_copy(update={"status": "done", "result": 42})
    return Turn.from_reply(
        "ask",
        _reply(
            TokenMessage(response="Let me look.", reply_to="m1"),
            ToolCallMessage(tool_calls=[running], reply_to="m1"),
            ToolResultMessage(tool_calls=[done], reply_to="m1"),
            TokenMessage(response="It is 42.", reply_to="m1"),
        ),
    )


def _reply(*messages: object) -> Reply:
    builder = ReplyBuilder("m1")
    for message in messages:
        builder.feed(message)  # type: ignore[arg-type]
    return builder.build()


def test_tool_calls_are_exported_where_they_happened() -> None:
    """Markdown, text and HTML all put a tool call between the text before it and after it."""
    turn = interleaved()
    for out, first, tool, second in (
        (conversation_markdown([turn]), "Let me look.", "**Tool call**", "It is 42."),
        (conversation_text([turn]), "Let me look.", "[tool search: done]", "It is 42."),
        (conversation_html([turn], styles=False), "Let me look.", "nbchat-tool-done", "It is 42."),
    ):
        assert out.index(first) < out.index(tool) < out.index(second), out


def test_a_reply_cut_short_says_so() -> None:
    """A stopped or unfinished reply is labelled in every export, in the panel's words."""
    cancelled = Turn(user="u", assistant="a", cancelled=True)
    unfinished = Turn(user="u", assistant="a", complete=False)
    for export in (conversation_text, conversation_markdown):
        assert "stopped" in export([cancelled]) and "cancelled" not in export([cancelled])
        assert "incomplete" in export([unfinished])
        assert "stopped" not in export([Turn(user="u", assistant="a")])
        assert "incomplete" not in export([Turn(user="u", assistant="a")])
    assert '<div class="nbchat-note">stopped</div>' in conversation_html([cancelled], styles=False)
    assert "nbchat-note" in conversation_html([unfinished], styles=False)


def test_the_blank_bubble_rule_is_the_turns() -> None:
    """Only a reply that ended with nothing to show gets an empty bubble in the static copy."""
    bubble = 'class="nbchat-msg nbchat-assistant"'
    call = ToolCall(id="t1", name="calc", status="done", result=1)
    assert bubble in conversation_html([Turn(user="u")], styles=False)
    assert bubble in conversation_html([Turn(user="u", cancelled=True)], styles=False)
    assert bubble not in conversation_html([Turn(user="u", tool_calls=[call])], styles=False)
    assert bubble not in conversation_html([Turn(user="u", complete=False)], styles=False)


def test_empty_conversation_is_empty() -> None:
    """No turns give empty fallbacks, so callers can substitute their own with ``or``."""
    assert conversation_markdown([]) == ""
    assert conversation_text([]) == ""


def test_exports_redact_a_secret_split_across_token_frames() -> None:
    """Markdown and text of a live turn never join a split secret back together."""
    tokens = ["Open https://ada:s3", "cret-pw@host, key sk-proj-", "Zx9_Zx9_Zx9_Zx9_Zx9_Zx9_"]
    turn = Turn(
        user="my token is ghp_" + "A1b2" * 9,
        assistant="".join(tokens),
        messages=[TokenMessage(response=token) for token in tokens],
    )
    for export in (conversation_markdown([turn]), conversation_text([turn])):
        assert "cret-pw" not in export and "Zx9_Zx9" not in export and "A1b2A1b2" not in export
        assert "@host" in export  # the rest of the URL is kept


def test_reasoning_is_exported_before_the_answer_and_inert() -> None:
    """Markdown and text exports hold the thinking before the reply, escaped and redacted."""
    turn = Turn("q", assistant="42", reasoning="<script>x</script> key sk-abcdefghijklmnopqrstu")
    markdown = conversation_markdown([turn])
    assert "*Thinking:*" in markdown and "<script>" not in markdown
    assert markdown.index("Thinking") < markdown.index("42")
    assert "sk-abcdefghijklmnopqrstu" not in markdown
    text = conversation_text([turn])
    assert text.index("Thinking:") < text.index("Assistant: 42")
