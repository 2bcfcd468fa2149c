"""The panel's markup: bubbles, tool cards, the status line, the stylesheet."""

from __future__ import annotations

import enum
import re
from pathlib import Path

import pytest

from nbchat import render
from nbchat.protocol import ToolCall, Usage
from nbchat.render import (
    STYLES,
    STYLESHEET,
    StreamingMarkdown,
    assistant_message_html,
    confirm_question_html,
    conversation_html,
    error_banner_html,
    status_header_html,
    stylesheet,
    tool_call_html,
    user_message_html,
)
from nbchat.turn import Turn

from .audit import problems, tool_call

pytestmark = pytest.mark.unit

# Widget markup


def test_user_message_is_escaped_plain_text() -> None:
    """The user's text is escaped, not interpreted as Markdown, in a user bubble."""
    out = user_message_html("**not bold** <b>x</b>\n  indented")
    assert out.startswith('<div class="nbchat-msg nbchat-user">')
    assert "**not bold** &lt;b&gt;x&lt;/b&gt;\n  indented" in out


def test_assistant_message_streaming_and_final() -> None:
    """A streaming reply is marked busy with the streaming class; the final one is not."""
    streaming = assistant_message_html("**hi**", streaming=True)
    final = assistant_message_html("**hi**")
    assert "nbchat-streaming" in streaming and 'aria-busy="true"' in streaming
    assert "nbchat-streaming" not in final
    assert "<strong>hi</strong>" in streaming and "<strong>hi</strong>" in final


def test_assistant_message_with_renderer_matches_full_render() -> None:
    """Streaming through a StreamingMarkdown gives the same markup as rendering in full."""
    stream = StreamingMarkdown()
    text = "one\n\ntwo\n\n- three"
    for end in range(1, len(text) + 1):
        partial = assistant_message_html(text[:end], streaming=True, renderer=stream)
    assert partial == assistant_message_html(text, streaming=True)


def test_error_banner_is_escaped_alert() -> None:
    """An error banner escapes its text and is announced as an alert."""
    out = error_banner_html("boom <b>")
    assert 'role="alert"' in out
    assert "boom &lt;b&gt;" in out


@pytest.mark.parametrize(
    ("state", "label"),
    [
        ("connected", "connected"),
        ("connecting", "connecting…"),
        ("reconnecting", "reconnecting…"),
        ("disconnected", "disconnected"),
    ],
)
def test_status_header_states(state: str, label: str) -> None:
    """Each known state gets its own dot class and label."""
    out = status_header_html(state, "attempt 2 of 5")
    assert f'class="nbchat-status nbchat-status-{state}"' in out
    assert f'<span class="nbchat-state">{label}</span>' in out
    assert '<span class="nbchat-detail">attempt 2 of 5</span>' in out


def test_status_header_accepts_enum_members() -> None:
    """A string enum member is shown by its value."""

    class State(str, enum.Enum):
        CONNECTED = "connected"

    assert "nbchat-status-connected" in status_header_html(State.CONNECTED)


def test_status_header_unknown_state() -> None:
    """An unknown state gets the neutral class and is shown escaped, without a detail span."""
    out = status_header_html('odd" x="<y>')
    assert "nbchat-status-unknown" in out
    assert "odd&quot; x=&quot;&lt;y&gt;" in out
    assert "nbchat-detail" not in out


# Tool cards


def test_tool_card_shows_name_status_arguments_and_result_escaped() -> None:
    """A finished call shows its escaped name, its verb, and JSON arguments and result."""
    call = tool_call(
        name="<b>search</b>", arguments={"q": "<script>"}, status="done", result={"r": "</code>"}
    )
    out = tool_call_html(call)
    assert out.startswith('<details class="nbchat-tool nbchat-tool-done">')
    assert '<span class="nbchat-tool-name">&lt;b&gt;search&lt;/b&gt;</span>' in out
    assert '<span class="nbchat-tool-verb">done</span>' in out
    assert "<pre><code>{\n  &quot;q&quot;: &quot;&lt;script&gt;&quot;\n}</code></pre>" in out
    assert "&quot;r&quot;: &quot;&lt;/code&gt;&quot;" in out


@pytest.mark.parametrize(
    ("status", "css", "verb"),
    [
        ("running", "running", "running…"),
        ("done", "done", "done"),
        ("error", "error", "error"),
        ("exploded", "running", "running…"),
        ('done" onclick="x', "running", "running…"),
        (["done"], "running", "running…"),
    ],
)
def test_tool_status_mapping(status: object, css: str, verb: str) -> None:
    """Known statuses map to their class and verb; anything else is shown as running."""
    call = ToolCall.model_construct(id="c", name="t", arguments={}, status=status, result=None)
    out = tool_call_html(call)
    assert f'class="nbchat-tool nbchat-tool-{css}"' in out
    assert f'<span class="nbchat-tool-verb">{verb}</span>' in out


def test_running_call_has_no_result_section() -> None:
    """A running call without a result shows its arguments only."""
    out = tool_call_html(tool_call(arguments={"q": 1}))
    assert "arguments" in out
    assert "result" not in out


def test_failed_call_is_open_with_error_label() -> None:
    """A failed call is expanded and labels its result as the error."""
    out = tool_call_html(tool_call(status="error", result="rate limited"))
    assert '<details class="nbchat-tool nbchat-tool-error" open>' in out
    assert '<div class="nbchat-tool-label">error</div>' in out
    assert "<pre><code>rate limited</code></pre>" in out


def test_long_tool_result_is_cut() -> None:
    """A result longer than MAX_TOOL_TEXT is cut with a note of what was left out."""
    out = tool_call_html(tool_call(status="done", result="x" * (render.MAX_TOOL_TEXT + 5)))
    assert "… (5 more characters)" in out
    assert "x" * (render.MAX_TOOL_TEXT + 1) not in out


def test_unserialisable_results_still_show() -> None:
    """Results JSON cannot encode fall back to str() or repr() instead of failing."""
    loop: list[object] = []
    loop.append(loop)
    assert "{1, 2}" in tool_call_html(tool_call(status="done", result={"s": {1, 2}}))
    assert "[[...]]" in tool_call_html(tool_call(status="done", result=loop))


def test_a_waiting_card_shows_every_argument_and_no_emoji_glyph() -> None:
    """Waiting: open, "waiting for your approval", where it runs, arguments uncut and inert."""
    long = "<b>" + "x" * (render.MAX_TOOL_TEXT + 10) + "\u200b\u202e"
    out = tool_call_html(tool_call(arguments={"q": long}), where="MCP: time", waiting=True)
    assert out.startswith('<details class="nbchat-tool nbchat-tool-waiting" open>')
    assert '<span class="nbchat-tool-verb">waiting for your approval</span>' in out
    assert '<span class="nbchat-tool-where">MCP: time</span>' in out
    assert "&lt;b&gt;" + "x" * (render.MAX_TOOL_TEXT + 10) + "\\u200b\\u202e" in out
    assert not problems(out)


@pytest.mark.parametrize("status", ["running", "done", "error"])
def test_no_card_draws_a_glyph_that_needs_an_emoji_font(status: str) -> None:
    """The status mark is CSS: a card's markup holds no pictograph."""
    out = tool_call_html(tool_call(status=status), waiting=status == "running")
    assert not re.search("[\u2300-\u23ff\u2600-\u27bf\U0001f000-\U0001faff]", out)
    assert '<span class="nbchat-tool-icon" aria-hidden="true"></span>' in out


def test_a_call_left_running_says_how_its_reply_ended() -> None:
    """A card still running when its turn ended shows the turn's note, in the static copy too."""
    out = tool_call_html(tool_call(), ended="stopped")
    assert '<details class="nbchat-tool nbchat-tool-ended">' in out
    assert '<span class="nbchat-tool-verb">stopped</span>' in out
    turn = Turn(user="go", tool_calls=[tool_call(runs_in="client")], cancelled=True)
    saved = conversation_html([turn], styles=False)
    assert "running" not in saved and '<span class="nbchat-tool-verb">stopped</span>' in saved
    done = tool_call_html(tool_call(status="done", result=1), ended="stopped")
    assert '<span class="nbchat-tool-verb">done</span>' in done  # a result wins


def test_the_question_says_where_the_call_runs() -> None:
    """The approval question names the tool and where it runs, escaped."""
    kernel = confirm_question_html(tool_call(name="<w>", runs_in="client"))
    assert "Run <code>&lt;w&gt;</code> in this kernel?" in kernel
    assert "Run <code>&lt;w&gt;</code> (MCP: time)?" in confirm_question_html(
        tool_call(name="<w>"), "MCP: time"
    )


# Styles


def test_styles_are_scoped() -> None:
    """Every rule applies only inside the ``.nbchat`` panel, but the two hiding static outputs.

    One reaches the outputs after a live panel, and only those holding ``.nbchat-static``;
    the other only an output whose ``.nbchat-static`` is empty (not used yet).
    """
    hide = re.compile(
        r"\.jp-OutputArea-child:has\(\.nbchat\.widget-box\)\s*~\s*"
        r"\.jp-OutputArea-child:has\(\.nbchat-static\)\s*\{\s*display:\s*none;\s*\}"
    )
    blank = re.compile(
        r"\.jp-OutputArea-child:has\(\.nbchat-static:empty\)\s*\{\s*display:\s*none;\s*\}"
    )
    assert len(hide.findall(stylesheet())) == 1 and len(blank.findall(stylesheet())) == 1
    css = re.sub(r"/\*.*?\*/", "", blank.sub("", hide.sub("", stylesheet())), flags=re.S)
    css = re.sub(r"@keyframes[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)
    css = re.sub(r"@media[^{]*\{", "", css)
    selectors = re.findall(r"([^{}]+)\{[^{}]*\}", css)
    assert selectors
    for group in selectors:
        for selector in group.split(","):
            assert selector.strip().startswith(".nbchat"), selector


def test_styles_use_jupyterlab_variables_with_fallbacks() -> None:
    """Colours come from JupyterLab theme variables, each with a fallback value."""
    variables = re.findall(r"var\((--jp-[\w-]+)([,)])", stylesheet())
    assert variables
    assert all(end == "," for _, end in variables)


def test_stylesheet_is_a_file_of_the_package() -> None:
    """The styles are a real file inside the package (so the wheel carries it), read once."""
    import nbchat

    assert STYLESHEET.is_file()
    assert STYLESHEET.is_relative_to(Path(nbchat.__file__).parent)
    assert stylesheet() == STYLESHEET.read_text(encoding="utf-8")
    assert stylesheet() is stylesheet()


def test_deprecated_styles_alias_wraps_the_stylesheet() -> None:
    """``STYLES`` (until the widget loads the file) is the same stylesheet in a style element."""
    assert f"<style>\n{stylesheet()}</style>" == STYLES


def test_conversation_html_inlines_styles_once() -> None:
    """A static HTML view carries the stylesheet once, or not at all when asked."""
    turns = [Turn(user="a", assistant="b"), Turn(user="c", assistant="d")]
    assert conversation_html(turns).count("<style>") == 1
    assert "<style>" not in conversation_html(turns, styles=False)


def test_the_static_copy_shows_thinking_usage_and_the_cut() -> None:
    """A saved turn shows its reasoning folded and escaped, its usage and the truncation note."""
    turn = Turn(
        "q",
        assistant="Once upon",
        reasoning="<b>plan</b>",
        usage=Usage(prompt_tokens=1200, completion_tokens=8),
        truncated=True,
    )
    page = conversation_html([turn], styles=False)
    assert '<details class="nbchat-reasoning">' in page and "&lt;b&gt;plan" in page
    assert "1,200 prompt · 8 completion tokens" in page and "cut at the token limit" in page
    assert page.index("nbchat-reasoning") < page.index("Once upon")


def test_a_mention_the_message_carried_is_a_chip_and_others_stay_text() -> None:
    """``@df`` (described as context) is a chip; ``@nope`` and an address stay plain text."""
    out = user_message_html("is @df like @nope? ada@df.org <b>", ["df"])
    assert '<span class="nbchat-mention">@df</span> like @nope? ada@df.org &lt;b&gt;' in out
    assert user_message_html("@df") == user_message_html("@df", [])
    assert "nbchat-mention" not in user_message_html("@df")
