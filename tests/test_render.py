"""Tests for nbchat.render: untrusted content in, inert HTML and safe fallbacks out."""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from nbchat import render
from nbchat.protocol import ErrorInfo, TokenMessage, ToolCall, ToolCallMessage, ToolResultMessage
from nbchat.render import (
    STYLES,
    STYLESHEET,
    StreamingMarkdown,
    assistant_message_html,
    conversation_html,
    conversation_markdown,
    conversation_text,
    error_banner_html,
    markdown_to_html,
    status_header_html,
    stylesheet,
    tool_call_html,
    user_message_html,
)
from nbchat.reply import Reply, ReplyBuilder
from nbchat.turn import Turn

from .payloads import PAYLOADS

# The audit: parse the markup like a browser would and reject anything active

SAFE_TAGS = {
    # from sanitized Markdown
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
    # from the markup render.py writes itself
    "details", "div", "span", "summary",
}  # fmt: skip
FORBIDDEN_TAGS = {
    "script", "iframe", "object", "embed", "style", "svg", "math", "form", "meta", "base",
    "link", "img", "input", "button", "textarea", "template", "video", "source", "body",
}  # fmt: skip
SAFE_ATTRIBUTES = {
    "href", "title", "class", "rel", "target", "align", "start", "open", "role",
    "aria-hidden", "aria-busy",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}
SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
URL_NOISE = re.compile(r"[\x00-\x20\x7f-\x9f]")
CLASS_TOKEN = re.compile(r"nbchat(?:-[a-z-]+)?|language-[A-Za-z0-9_+#.-]+")


class Audit(HTMLParser):
    """Collects every element, attribute and non-text node of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.other: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

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
    for tag, attrs in parsed.elements:
        if tag in FORBIDDEN_TAGS or tag not in SAFE_TAGS:
            found.append(f"element <{tag}>")
        names = {name for name, _ in attrs}
        for name, value in attrs:
            value = value or ""
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
                    if not CLASS_TOKEN.fullmatch(token)
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


def streamed(text: str) -> str:
    stream = StreamingMarkdown()
    stream.render(text[: len(text) // 2])
    return assistant_message_html(text, streaming=True, renderer=stream)


ENTRY_POINTS: dict[str, Callable[[str], str]] = {
    "markdown_to_html": markdown_to_html,
    "assistant final": assistant_message_html,
    "assistant streaming": lambda p: assistant_message_html(p, streaming=True),
    "assistant streamed": streamed,
    "user message": user_message_html,
    "error banner": error_banner_html,
    "status state": lambda p: status_header_html(p, p),
    "status detail": lambda p: status_header_html("connected", p),
    "tool name": lambda p: tool_call_html(tool_call(name=p)),
    "tool arguments": lambda p: tool_call_html(tool_call(arguments={p: p, "n": [p]})),
    "tool raw arguments": lambda p: tool_call_html(tool_call(arguments=p)),
    "tool text result": lambda p: tool_call_html(tool_call(status="done", result=p)),
    "tool JSON result": lambda p: tool_call_html(tool_call(status="error", result={"e": p})),
    "tool status": lambda p: tool_call_html(
        ToolCall.model_construct(id=p, name=p, arguments={}, status=p, result=p)
    ),
    "conversation markdown, our renderer": lambda p: markdown_to_html(
        conversation_markdown(
            [Turn(user=p, assistant=p, tool_calls=[tool_call(name=p, result=p)], error=error(p))]
        )
    ),
    "conversation markdown, permissive renderer": lambda p: permissive_markdown(
        conversation_markdown(
            [
                Turn(
                    user=p,
                    assistant=p,
                    tool_calls=[tool_call(name=p, arguments={p: p}, status="done", result=p)],
                    error=error(p),
                )
            ]
        )
    ),
    "conversation html": lambda p: conversation_html(
        [
            Turn(user=p, assistant=p, tool_calls=[tool_call(name=p, result=p)], error=error(p)),
            Turn(user=p, assistant=p, complete=False),
        ],
        title=p,
        styles=False,
    ),
}


# The audit itself


@pytest.mark.parametrize(
    "markup",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        '<a href="jav&#x09;ascript:alert(1)">x</a>',
        '<a href=" JAVASCRIPT:alert(1)">x</a>',
        '<p style="color:red">x</p>',
        '<p class="jp-mod-hidden">x</p>',
        '<a href="https://x" target="_top">x</a>',
        "<!-- x -->",
        "<custom>x</custom>",
    ],
)
def test_audit_catches_active_markup(markup: str) -> None:
    """The audit rejects each kind of active markup it looks for, so its passes mean something."""
    assert problems(markup)


def test_audit_accepts_plain_safe_markup() -> None:
    """The audit lets through ordinary links, relative URLs and our own classes."""
    markup = (
        '<div class="nbchat-msg"><a href="https://x.org/a" rel="noopener" target="_blank">a</a>'
        '<a href="/relative">b</a><a href="mailto:a@b.c">c</a></div>'
    )
    assert problems(markup) == []


# Injection corpus through every entry point


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_payload_stays_inert(entry: str, payload: str) -> None:
    """No payload turns into an element, attribute, class or URL that could run code."""
    markup = ENTRY_POINTS[entry](payload)
    assert problems(markup) == [], markup


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_text_survives_in_user_message(payload: str) -> None:
    """The user's text is shown as typed, not dropped: escaping, not stripping."""
    shown = text_of(user_message_html(payload))
    assert shown == " ".join(payload.split())


# Markdown rendering


def test_inline_markdown_renders() -> None:
    """Bold, italics, strikethrough and inline code become their elements."""
    out = markdown_to_html("**b** *i* ~~s~~ `c<d>`")
    assert "<strong>b</strong>" in out
    assert "<em>i</em>" in out
    assert "<s>s</s>" in out
    assert "<code>c&lt;d&gt;</code>" in out


def test_code_fence_keeps_language_class() -> None:
    """A fenced block keeps markdown-it's language class and escapes its content."""
    out = markdown_to_html("```python\nif a < b:\n    pass\n```")
    assert '<pre><code class="language-python">if a &lt; b:\n    pass\n</code></pre>' in out


def test_code_fence_drops_crafted_class() -> None:
    """An info string that is not a plain language name leaves no class at all."""
    out = markdown_to_html('```x" onclick="y\n1\n```')
    assert "<pre><code>1\n</code></pre>" in out


def test_lists_render() -> None:
    """Bullet and ordered lists render, with the ordered list's start number."""
    out = markdown_to_html("- a\n- b\n\n3. c\n4. d")
    assert "<ul>\n<li>a</li>\n<li>b</li>\n</ul>" in out
    assert '<ol start="3">' in out


def test_tables_render_with_alignment() -> None:
    """Tables render and keep column alignment as ``align``, never as ``style``."""
    out = markdown_to_html("| a | b |\n|--:|---|\n| 1 | 2 |")
    assert '<th align="right">a</th>' in out
    assert "<th>b</th>" in out
    assert '<td align="right">1</td>' in out
    assert "style" not in out


def test_safe_links_keep_href_and_rel() -> None:
    """An https link keeps its href and title, and gets rel and a new-tab target."""
    out = markdown_to_html('[docs](https://example.org/a?b=1&c=2 "Docs")')
    assert 'href="https://example.org/a?b=1&amp;c=2"' in out
    assert 'title="Docs"' in out
    assert 'rel="noopener noreferrer nofollow"' in out
    assert 'target="_blank"' in out


def test_mailto_and_relative_links_are_kept() -> None:
    """mailto: and relative links are allowed schemes and keep their href."""
    out = markdown_to_html("[m](mailto:a@example.org) [r](docs/page.md)")
    assert 'href="mailto:a@example.org"' in out
    assert 'href="docs/page.md"' in out


def test_images_become_links() -> None:
    """An image renders as a link labelled by its alt text, so nothing loads by itself."""
    out = markdown_to_html("![a chart](https://example.org/c.png)")
    assert "<img" not in out
    assert ">a chart</a>" in out
    assert 'href="https://example.org/c.png"' in out


def test_raw_html_is_shown_as_text() -> None:
    """Raw HTML in a reply is displayed literally rather than dropped."""
    assert "&lt;b&gt;bold&lt;/b&gt;" in markdown_to_html("<b>bold</b>")


def test_half_written_message_renders() -> None:
    """An unclosed code fence, as seen mid-stream, renders as an open code block."""
    out = markdown_to_html("Here:\n\n```python\ndef f(")
    assert '<pre><code class="language-python">def f(</code></pre>' in out


@pytest.mark.parametrize(
    "text",
    [
        "word " * 20_000,
        "[" * 100_000,
        "*a" * 50_000,
        "```\n" + "x = 1\n" * 20_000,
    ],
)
def test_large_inputs_render(text: str) -> None:
    """100k-character replies, including pathological ones, render to sanitized HTML."""
    out = markdown_to_html(text)
    assert out
    assert problems(out) == []


# Streaming


STREAM_DOCUMENTS = [
    "# Title\n\nSome *text* here.\n\n- a\n- b\n\n  continued\n- c\n\nEnd.\n",
    "Intro\n\n```python\ndef f():\n\n    return 1\n\n\n```\n\nAfter the code.\n",
    "| a | b |\n|--:|---|\n| 1 | 2 |\n\ntext\n---\n\n> quote\n> more\n\nlast",
    "1. one\n\n2. two\n\n   indented para\n\n3. three\n\n    code\n\n        more\n\nplain",
    "para\n- list right after\n\nsetext\n===\n\n***\n\n~~~\ntilde fence\n\n~~~\n",
    "line one  \nline two\\\nline three\n\n> q\n\n> separate q\n\n* x\n\n\n* y\n",
]


@pytest.mark.parametrize("document", STREAM_DOCUMENTS)
def test_streaming_equals_full_render_at_every_step(document: str) -> None:
    """Rendering a growing reply incrementally gives exactly the full render at every length."""
    stream = StreamingMarkdown()
    for end in range(1, len(document) + 1):
        assert stream.render(document[:end]) == markdown_to_html(document[:end]), end


def test_streaming_equals_full_render_on_random_markdown() -> None:
    """Random Markdown-ish text, streamed in random chunks, always matches the full render.

    Reference definitions are left out: one defined after its use is the
    documented exception, resolved by the final full render.
    """
    pieces = [
        "a", "b c", " ", "  ", "\t", "\n", "\n\n", "- ", "+ ", "1. ", "2", ".", ")", "> ",
        "    ", "```", "~~~", "`", "*", "_", "#", "| x |", "|---|", ":-:", "===", "---", "\\",
        "[l](http://e.org)", "![i](/p)", "[r]", "<", "&amp;", "~~",
    ]  # fmt: skip
    rng = random.Random(1234)
    for _ in range(150):
        document = "".join(rng.choice(pieces) for _ in range(rng.randint(20, 120)))
        stream = StreamingMarkdown()
        end = 0
        while end < len(document):
            end = min(len(document), end + rng.randint(1, 12))
            expected = markdown_to_html(document[:end])
            assert stream.render(document[:end]) == expected, repr(document[:end])


def test_streaming_caches_finished_blocks() -> None:
    """Blocks followed by a blank line and a complete line are kept and not parsed again."""
    stream = StreamingMarkdown()
    stream.render("first paragraph\n\nsecond paragraph\n\nthird")
    assert stream._stable_text == "first paragraph\n\n"
    stream.render("first paragraph\n\nsecond paragraph\n\nthird\n")
    assert stream._stable_text == "first paragraph\n\nsecond paragraph\n\n"


def test_streaming_does_not_cache_a_boundary_an_append_can_undo() -> None:
    """A ``2`` after a list is not final: the ``.`` that follows makes it the list's next item."""
    stream = StreamingMarkdown()
    stream.render("1. one\n\n2")
    assert stream._stable_text == ""
    assert stream.render("1. one\n\n2. two") == markdown_to_html("1. one\n\n2. two")


def test_streaming_resets_when_text_is_replaced() -> None:
    """A text that does not extend the previous one is rendered from scratch."""
    stream = StreamingMarkdown()
    stream.render("old paragraph\n\nmore\n\nand more")
    assert stream.render("new *text*") == markdown_to_html("new *text*")


def test_streaming_resolves_earlier_reference_definitions() -> None:
    """A reference defined in an earlier, cached block still resolves in later blocks."""
    document = "[r]: https://example.org\n\nintro\n\nsee [the site][r]\n\nend"
    stream = StreamingMarkdown()
    for end in range(1, len(document) + 1):
        out = stream.render(document[:end])
    assert out == markdown_to_html(document)
    assert 'href="https://example.org"' in out


def test_streaming_normalizes_newlines() -> None:
    """CRLF and CR line ends stream to the same HTML as the full render."""
    document = "a\r\n\r\nb\r\rc\r\n\r\n```\r\nx\r\n\r\ny\r\n```\r\n"
    stream = StreamingMarkdown()
    for end in range(1, len(document) + 1):
        assert stream.render(document[:end]) == markdown_to_html(document[:end])


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
    """The reply embedded in the Markdown renders to the same text as in the widget."""
    reply = TURNS[0].assistant
    rendered = permissive_markdown(conversation_markdown([Turn(user="u", assistant=reply)]))
    assert text_of(rendered) == "You u Assistant " + text_of(markdown_to_html(reply))


def test_conversation_markdown_reply_is_one_html_line() -> None:
    """The embedded reply is one line, so renderers keep it as a single HTML block."""
    out = conversation_markdown([Turn(user="u", assistant="a\n\nb\n\n```\n1\n\n2\n```")])
    line = next(line for line in out.split("\n") if line.startswith("<div"))
    assert line.endswith("</div>")
    assert "&#10;" in line


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


def error(text: str) -> ErrorInfo:
    """A server error whose code and message are both ``text``."""
    return ErrorInfo(code=text, message=text)


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
    """A cancelled or unfinished reply is labelled in every export; a complete one is not."""
    cancelled = Turn(user="u", assistant="a", cancelled=True)
    unfinished = Turn(user="u", assistant="a", complete=False)
    for export in (conversation_text, conversation_markdown):
        assert "(cancelled)" in export([cancelled])
        assert "(incomplete" in export([unfinished])
        assert "(cancelled)" not in export([Turn(user="u", assistant="a")])
        assert "(incomplete" not in export([Turn(user="u", assistant="a")])
    assert "nbchat-note" in conversation_html([unfinished], styles=False)


def test_empty_conversation_is_empty() -> None:
    """No turns give empty fallbacks, so callers can substitute their own with ``or``."""
    assert conversation_markdown([]) == ""
    assert conversation_text([]) == ""


# Styles


def test_styles_are_scoped() -> None:
    """Every rule of the stylesheet applies only inside the ``.nbchat`` panel."""
    css = re.sub(r"/\*.*?\*/", "", stylesheet(), flags=re.S)
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
